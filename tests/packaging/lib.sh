# shellcheck shell=bash
# Shared helpers for the packaging tests (tests/packaging/*.sh, run by ctest).
# Usage, at the top of a case:   source "$(dirname "$0")/lib.sh" "$@"
# $1 is the mux443 binary (some cases do not need it). $T is a temp dir removed on
# success and kept on failure (or always with KEEP_TMP=1). Exit 77 = skipped.
set -euo pipefail

MUX443=${1:-}
[[ -n $MUX443 ]] && MUX443=$(realpath "$MUX443")
PKG_TEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the cases
REPO=$(cd "$PKG_TEST_DIR/../.." && pwd)
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/mux443-pkg-$TEST_NAME.XXXXXX")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}

log() { printf '[%s %s] %s\n' "$(date +%T)" "$TEST_NAME" "$*" >&2; }
fail() {
    log "FAIL: $*"
    exit 1
}
skip() {
    log "SKIP: $*"
    exit 77
}
need() { # TOOL... : skip unless every tool is on PATH
    local t
    for t in "$@"; do command -v "$t" >/dev/null || skip "$t not installed"; done
}

_pkg_cleanup() {
    local rc=$?
    trap - EXIT
    if ((rc == 0)) && [[ -z ${KEEP_TMP:-} ]]; then
        rm -rf "$T"
        log "PASS"
    elif ((rc == 77)); then
        rm -rf "$T"
    else
        log "exit $rc; files kept in $T"
    fi
    exit "$rc"
}
trap _pkg_cleanup EXIT
trap 'exit 130' INT TERM

# Example configurations name their certificates as a production host would
# (/etc/mux443/tls/..., the Kubernetes Secret mount, Debian's snakeoil pair) or
# relative to the file (the demo). make_config FILE OUT writes a copy of FILE that
# mux443 -t can check here:
#  - relative cert/key paths are made absolute against FILE's directory;
#  - absolute ones under /etc/ move to $T/tls/etc/..., and a throwaway self-signed
#    certificate (example.com, *.example.com) is made for every such cert/key
#    pair of every [tls] section (n-th cert with n-th key; RSA when the
#    certificate's file name contains "rsa", ECDSA P-256 otherwise);
#  - Kubernetes Service names (*.svc.cluster.local) become 127.0.0.1;
#  - `user = mux443` / `group = mux443` become the user running the test (-t
#    checks they exist; the packages create mux443 at install time);
#  - an admin_token_file under /etc/ moves to $T/tls/etc/... with a throwaway token.
make_config() {
    local in=$1 out=$2 dir crt key
    dir=$(cd "$(dirname "$in")" && pwd)
    sed -E "s#[A-Za-z0-9.-]+\.svc\.cluster\.local:#127.0.0.1:#g
            s#^(user[[:space:]]*=[[:space:]]*)mux443#\1$(id -un)#
            s#^(group[[:space:]]*=[[:space:]]*)mux443#\1$(id -gn)#" "$in" |
        awk -v dir="$dir" -v tls="$T/tls" '
        /^[ \t]*\[/ { intls = ($0 ~ /^[ \t]*\[tls([ \t][^]]*)?\]/) }
        intls && /^[ \t]*(cert|key)[ \t]*=/ {
            comment = ""
            if (match($0, /[ \t]+[;#].*$/)) { comment = substr($0, RSTART); $0 = substr($0, 1, RSTART - 1) }
            eq = index($0, "="); head = substr($0, 1, eq); n = split(substr($0, eq + 1), it, ",")
            line = head
            for (i = 1; i <= n; i++) {
                v = it[i]; gsub(/^[ \t]+|[ \t]+$/, "", v)
                if (v !~ /^\//) v = dir "/" v
                else if (v ~ /^\/etc\//) v = tls v
                line = line (i > 1 ? ", " : " ") v
            }
            print line comment; next
        }
        /^[ \t]*admin_token_file[ \t]*=[ \t]*\/etc\// { sub(/=[ \t]*/, "= " tls); print; next }
        { print }' >"$out"
    local tok
    tok=$(sed -nE 's/^[[:space:]]*admin_token_file[[:space:]]*=[[:space:]]*([^[:space:];#]+).*/\1/p' "$out")
    if [[ -n $tok && $tok == "$T"/tls/* && ! -e $tok ]]; then
        mkdir -p "$(dirname "$tok")"
        openssl rand -hex 32 >"$tok"
    fi
    while read -r crt key; do
        [[ $crt == "$T"/tls/* && $key == "$T"/tls/* ]] || continue
        [[ -e $crt ]] && continue
        mkdir -p "$(dirname "$crt")" "$(dirname "$key")"
        if [[ $(basename "$crt") == *rsa* ]]; then
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key" 2>/dev/null
        else
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key" 2>/dev/null
        fi
        openssl req -x509 -new -key "$key" -sha256 -days 2 -subj "/CN=example.com" \
            -addext "subjectAltName = DNS:example.com, DNS:*.example.com" \
            -addext "extendedKeyUsage = serverAuth" -out "$crt" 2>/dev/null ||
            fail "openssl could not make $crt"
    done < <(_tls_pairs "$out")
}

# Prints "CERT KEY" for every pair in the [tls] / [tls NAME] sections of an INI file.
_tls_pairs() {
    awk '
    function flush(  i) { for (i = 1; i <= nc && i <= nk; i++) print c[i], k[i]; nc = nk = 0 }
    function items(v, arr,  n, i, parts) {
        sub(/[ \t]+[;#].*$/, "", v)
        n = split(v, parts, ",")
        for (i = 1; i <= n; i++) { gsub(/^[ \t]+|[ \t]+$/, "", parts[i]); arr[i] = parts[i] }
        return n
    }
    /^[ \t]*\[/ { flush(); intls = ($0 ~ /^[ \t]*\[tls([ \t][^]]*)?\]/); next }
    intls && /^[ \t]*cert[ \t]*=/ { v = $0; sub(/^[^=]*=/, "", v); n = items(v, tmp); for (i = 1; i <= n; i++) c[++nc] = tmp[i] }
    intls && /^[ \t]*key[ \t]*=/  { v = $0; sub(/^[^=]*=/, "", v); n = items(v, tmp); for (i = 1; i <= n; i++) k[++nk] = tmp[i] }
    END { flush() }' "$1"
}

# check_config BINARY FILE: make_config, then BINARY -t must exit 0. Prints the
# errors (FILE:LINE: [section] key: reason) otherwise and returns 1.
check_config() {
    local bin=$1 file=$2 name rc=0
    name=$(basename "$file")
    name=${name%.gz}
    mkdir -p "$T/cfg"
    if [[ $file == *.gz ]]; then
        zcat "$file" >"${file%.gz}.unpacked"
        file=${file%.gz}.unpacked
    fi
    make_config "$file" "$T/cfg/$name"
    "$bin" -t -c "$T/cfg/$name" >"$T/cfg/$name.out" 2>&1 || rc=$?
    if ((rc != 0)); then
        log "mux443 -t on $name: exit $rc"
        sed 's/^/    /' "$T/cfg/$name.out" >&2
        return 1
    fi
    log "ok: $name ($(tail -n 1 "$T/cfg/$name.out" | sed 's/.*(//; s/)$//'))"
}
