#!/usr/bin/env bash
# packaging/Dockerfile, without Docker (none on the build machines): hadolint when
# installed; otherwise, and in any case, every RUN line parses as sh (and passes
# ShellCheck when installed), every COPY source exists and survives Dockerfile.dockerignore, the
# runtime stage is what we promise (packages, user, setcap, entrypoint,
# healthcheck, stop signal), the build stage's cmake RUN line really builds and
# installs mux443 here, and the HEALTHCHECK script tells 200 from the rest.
# shellcheck source=tests/packaging/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
DF=$REPO/packaging/Dockerfile
need python3

if command -v hadolint >/dev/null; then
    hadolint "$DF" || fail "hadolint"
    log "hadolint: clean"
else
    log "hadolint not installed (not packaged by Debian 12): checking by hand"
fi

# Instructions, continuation lines joined: one per line in $T/instr as "KEYWORD ARGS".
python3 - "$DF" >"$T/instr" <<'PY'
import sys
cur = ""
for raw in open(sys.argv[1]):
    line = raw.rstrip("\n")
    if not cur and (not line.strip() or line.lstrip().startswith("#")):
        continue
    if line.lstrip().startswith("#"):
        continue                      # comment inside a continued instruction
    if line.endswith("\\"):
        cur += line[:-1] + " "
        continue
    cur += line
    print(" ".join(cur.split()))
    cur = ""
PY

n=0
sc=""
command -v shellcheck >/dev/null && sc=" + shellcheck"
while IFS= read -r run; do
    n=$((n + 1))
    printf '%s\n' "$run" >"$T/run$n.sh"
    sh -n "$T/run$n.sh" || fail "RUN #$n does not parse: $run"
    if command -v shellcheck >/dev/null; then
        shellcheck -s sh "$T/run$n.sh" >&2 || fail "shellcheck RUN #$n: $run"
    fi
done < <(sed -n 's/^RUN //p' "$T/instr")
((n >= 3)) || fail "found only $n RUN instructions"
log "$n RUN lines: sh -n$sc clean"

# COPY sources (not --from=) exist and are not excluded by the dockerignore.
ignore=$REPO/packaging/Dockerfile.dockerignore
[[ -f $ignore ]] || fail "no packaging/Dockerfile.dockerignore"
while IFS= read -r args; do
    [[ $args == *--from=* ]] && continue
    read -ra words <<<"$args"
    srcs=()
    for w in "${words[@]}"; do [[ $w == --* ]] || srcs+=("$w"); done
    unset 'srcs[${#srcs[@]}-1]'            # the destination
    for s in "${srcs[@]}"; do
        [[ -e $REPO/$s ]] || fail "COPY source $s does not exist"
        # Kept when "!PATH" or "!PATH/" names it or one of its parent directories.
        p=${s%/} kept=""
        while [[ -n $p ]]; do
            grep -qxF -e "!$p" -e "!$p/" "$ignore" && kept=1 && break
            [[ $p == */* ]] && p=${p%/*} || p=""
        done
        [[ -n $kept ]] || fail "COPY source $s is excluded by $ignore"
    done
done < <(sed -n 's/^COPY //p' "$T/instr")
log "COPY sources present and not ignored"

expect() { grep -qE "$1" "$T/instr" || fail "Dockerfile: no line matching /$1/"; }
expect '^FROM \$\{DEBIAN\} AS build$'
expect '^ARG DEBIAN=debian:12-slim$'
expect 'apt-get install -y --no-install-recommends libev4 libssl3 libhttp-parser2.9 libinih1 liburing2 libcap2-bin &&'
expect 'setcap cap_net_bind_service=\+ep /usr/sbin/mux443'
expect '^USER [1-9][0-9]*:[1-9][0-9]*$'
expect '^STOPSIGNAL SIGTERM$'
expect '^HEALTHCHECK .*CMD \["/usr/lib/mux443/healthcheck"\]$'
expect '^ENTRYPOINT \["/usr/sbin/mux443"\]$'
expect '^CMD \["-c", "/etc/mux443/mux443.ini"\]$'
expect '^COPY etc/mux443.ini /etc/mux443/mux443.ini$'
# The last stage must not be the build stage, and must not carry compilers.
last_from=$(grep -n '^FROM ' "$T/instr" | tail -n 1 | cut -d: -f1)
tail -n +"$last_from" "$T/instr" >"$T/runtime-stage"
if grep -qE 'build-essential|-dev( |$)' "$T/runtime-stage"; then
    fail "the runtime stage installs build packages"
fi
uid=$(sed -n 's/^USER \([0-9]*\):.*/\1/p' "$T/instr")
grep -q -- "useradd --system --uid $uid " "$T/instr" || fail "USER $uid is not the mux443 user created"
log "runtime stage: packages, user $uid, setcap, entrypoint, healthcheck, stop signal"

# The build stage's compile line, run for real on a copy of the sources.
need cmake
build_run=$(grep -m1 '^RUN cmake ' "$T/instr" | sed 's/^RUN //')
[[ -n $build_run ]] || fail "no 'RUN cmake' line in the build stage"
mkdir -p "$T/src"
(cd "$REPO" && cp -a CMakeLists.txt COPYING include src "$T/src/")
(cd "$T/src" && sh -c "${build_run//\/out/$T/out}") >"$T/build.log" 2>&1 || {
    tail -n 40 "$T/build.log" >&2
    fail "the build stage's RUN cmake line failed"
}
[[ -x $T/out/usr/sbin/mux443 ]] || fail "the build stage did not install /usr/sbin/mux443"
log "build stage RUN line: $("$T/out/usr/sbin/mux443" -V) installed in DESTDIR"

# HEALTHCHECK script against a stand-in admin listener.
HC=$REPO/packaging/docker/healthcheck.sh
python3 - "$T/port" >"$T/admin.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/healthz" else 404
        self.send_response(code); self.end_headers(); self.wfile.write(b"ok\n")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
srv=$!
# Keep the exit status for _pkg_cleanup, whatever kill returns.
_rc=0
trap '_rc=$?; kill "$srv" 2>/dev/null; (exit "$_rc"); _pkg_cleanup' EXIT
for _ in $(seq 50); do [[ -s $T/port ]] && break; sleep 0.1; done
port=$(cat "$T/port")
printf '[mux443]\nlisten = 0.0.0.0:443 ; x\nadmin  = 127.0.0.1:%s   ; the admin\n[listener x]\nadmin = 1.2.3.4:1\n' \
    "$port" >"$T/hc.ini"
MUX443_CONFIG=$T/hc.ini bash "$HC" || fail "healthcheck: admin from the config file, 200 -> should pass"
MUX443_ADMIN=127.0.0.1:$port bash "$HC" || fail "healthcheck: MUX443_ADMIN, 200 -> should pass"
kill "$srv"
wait "$srv" 2>/dev/null || true
trap _pkg_cleanup EXIT
if MUX443_ADMIN=127.0.0.1:$port bash "$HC" 2>/dev/null; then
    fail "healthcheck passed with nothing listening"
fi
printf '[mux443]\nlisten = 0.0.0.0:443\n' >"$T/noadmin.ini"
if MUX443_CONFIG=$T/noadmin.ini bash "$HC" 2>/dev/null; then
    fail "healthcheck passed without an admin listener"
fi
log "healthcheck: 200 -> healthy; refused / no admin -> unhealthy"
