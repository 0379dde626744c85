#!/bin/sh
# Installs the Debian packages mux443 needs that are missing: `build` for compiling,
# `demo` adds the demo backends, `test` adds everything the test suite drives.
# Only calls apt-get when something is missing; needs root (or sudo) then.
set -eu

build="build-essential cmake pkg-config libssl-dev libev-dev libhttp-parser-dev libinih-dev
       libbpf-dev clang liburing-dev"
demo="coturn python3 python3-websockets openssl curl"
test="clang libclang-rt-dev libcmocka-dev procps iproute2 util-linux chromium libnss3-tools
      prometheus debhelper dpkg-dev lintian systemd python3-yaml shellcheck groff-base janus
      podman buildah debootstrap libcap2-bin pebble lego
      sip-tester sipsak kamailio mosquitto mosquitto-clients openssh-server openssh-client
      strace"
# Needed as commands, from whichever package provides them: a machine may already have
# Node.js from elsewhere (with its own npm), and Debian's npm would conflict with it.
test_cmds="node:nodejs npm:npm"

case "${1:-build}" in
build) want="$build" cmds="" ;;
demo) want="$build $demo" cmds="" ;;
test) want="$build $demo $test" cmds="$test_cmds" ;;
*) echo "usage: $0 [build|demo|test]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
for c in $cmds; do
    command -v "${c%%:*}" >/dev/null 2>&1 || missing="$missing ${c#*:}"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
