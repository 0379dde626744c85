# Shared helpers for mux443's integration tests (one file per case, run by ctest).
# Usage, at the top of a case:   source "$(dirname "$0")/lib.sh" "$@"
# $1 is the mux443 binary. KEEP_TMP=1 keeps $T even when the case passes. Each case gets a temp dir $T (removed on success, kept with
# every log dumped on failure); processes are started with start_bg and stopped by pid.
set -euo pipefail

# Each case runs in a network namespace of its own, with only a loopback interface:
# ports picked at run time cannot be taken by another case running in parallel (or by
# anything else on the machine), and nothing a case starts can reach beyond it. Inside,
# the ephemeral port range is 40000-60999 and free_port picks from 20000-39999, so a
# case's own outgoing connections cannot take a port it picked either.
# MUX443_TEST_NETNS=off runs on the host's loopback instead. The browser tests enter a
# namespace of their own before sourcing this file (E2E_NETNS_CHILD).
if [[ -z ${MUX443_IN_NETNS:-} && -z ${E2E_NETNS_CHILD:-} && ${MUX443_TEST_NETNS:-on} != off ]]; then
    export MUX443_IN_NETNS=1
    if unshare --net true 2>/dev/null; then
        exec unshare --net -- bash "$0" "$@"
    elif unshare --user --map-root-user --net true 2>/dev/null; then
        exec unshare --user --map-root-user --net -- bash "$0" "$@"
    fi
    unset MUX443_IN_NETNS # no namespaces here: share the host's loopback
fi
if [[ -n ${MUX443_IN_NETNS:-} ]]; then
    ip link set lo up
    echo "40000 60999" >/proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
fi

MUX443=${1:?usage: $0 PATH/TO/mux443}
MUX443=$(realpath "$MUX443")
INTEG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$INTEG_DIR/../.." && pwd)
PEERS=$REPO/tests/peers
# shellcheck disable=SC2034 # used by the cases
VECTORS=$REPO/tests/vectors
PY=/usr/bin/python3 # system python: python3-websockets lives there
TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/mux443-$TEST_NAME.XXXXXX")
export PYTHONDONTWRITEBYTECODE=1
# Sanitizer builds: report and fail on the first error, keep leak checking on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}

declare -A PIDS=()
PID_ORDER=()

log() { printf '[%s %s] %s\n' "$(date +%T.%3N)" "$TEST_NAME" "$*" >&2; }

fail() {
    log "FAIL: $*"
    exit 1
}

_cleanup() {
    local rc=$? i name pid
    trap - EXIT INT TERM
    for ((i = ${#PID_ORDER[@]} - 1; i >= 0; i--)); do
        name=${PID_ORDER[$i]}
        pid=${PIDS[$name]:-}
        [[ -n $pid ]] && _kill_pid "$pid"
    done
    if ((rc == 0)); then
        if [[ -n ${KEEP_TMP:-} ]]; then
            log "PASS (KEEP_TMP set: files kept in $T)"
        else
            rm -rf "$T"
            log "PASS"
        fi
    else
        local f
        for f in "$T"/*.log; do
            [[ -e $f ]] || continue
            echo "======== $f (last 80 lines)" >&2
            tail -n 80 "$f" >&2
        done
        log "FAILED (exit $rc); files kept in $T"
    fi
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

# _kill_pid PID: SIGTERM, wait up to 5 s, then SIGKILL. Never fails.
_kill_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# free_port [ADDR]: prints a TCP port that is free on ADDR (default 127.0.0.1).
# shellcheck disable=SC2120 # ADDR is optional
free_port() {
    "$PY" - "${1:-127.0.0.1}" "${MUX443_IN_NETNS:-}" <<'PYEOF'
import random, socket, sys
a, netns = sys.argv[1], sys.argv[2]
fam = socket.AF_INET6 if ":" in a else socket.AF_INET
for _ in range(200):
    s = socket.socket(fam)
    try:
        # In our namespace: below its ephemeral range; elsewhere: let the kernel pick.
        s.bind((a, random.randint(20000, 39999) if netns else 0))
        print(s.getsockname()[1])
        break
    except OSError:
        continue
    finally:
        s.close()
else:
    sys.exit("free_port: no free port")
PYEOF
}

# start_bg NAME CMD...: runs CMD in the background, stdout+stderr in $T/NAME.log.
start_bg() {
    local name=$1
    shift
    "$@" >"$T/$name.log" 2>&1 &
    PIDS[$name]=$!
    PID_ORDER+=("$name")
}

# pid_of NAME
pid_of() { echo "${PIDS[$1]}"; }

# wait_log NAME REGEX [SECONDS=15]: polls $T/NAME.log for an extended regex; fails
# (with the log) if the deadline passes or if NAME's process exits first.
wait_log() {
    local name=$1 re=$2 secs=${3:-15} deadline
    deadline=$((SECONDS + secs))
    while ! grep -Eq -- "$re" "$T/$name.log" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            fail "timed out after ${secs}s waiting for /$re/ in $name.log"
        fi
        if [[ -n ${PIDS[$name]:-} ]] && ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
            grep -Eq -- "$re" "$T/$name.log" 2>/dev/null && return 0
            fail "$name exited while waiting for /$re/ in $name.log"
        fi
        sleep 0.05
    done
}

# wait_ready NAME [SECONDS]: a peer prints `ready`, mux443 prints `ready:`.
wait_ready() { wait_log "$1" '(^|[^a-z])ready' "${2:-15}"; }

# count_log NAME REGEX: number of matching lines in $T/NAME.log.
count_log() { grep -Ec -- "$2" "$T/$1.log" 2>/dev/null || true; }

# wait_count NAME REGEX N [SECONDS]: until at least N lines match.
wait_count() {
    local name=$1 re=$2 n=$3 secs=${4:-15} deadline
    deadline=$((SECONDS + secs))
    while (($(count_log "$name" "$re") < n)); do
        ((SECONDS < deadline)) || fail "timed out waiting for $n lines /$re/ in $name.log"
        sleep 0.05
    done
}

# stop NAME: SIGTERM and wait (up to 10 s); prints nothing, sets STOP_RC.
STOP_RC=0
stop() {
    local name=$1 pid i
    pid=${PIDS[$name]}
    STOP_RC=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset "PIDS[$name]"
        fail "$name (pid $pid) did not exit within 10 s of SIGTERM"
    fi
    wait "$pid" 2>/dev/null || STOP_RC=$?
    unset "PIDS[$name]"
}

# wait_exit NAME SECONDS: waits for NAME's process to exit by itself (fails after the
# deadline); sets STOP_RC to its exit status.
wait_exit() {
    local name=$1 secs=$2 pid deadline
    pid=${PIDS[$name]}
    deadline=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "$name (pid $pid) still running after ${secs}s"
        sleep 0.05
    done
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
    unset "PIDS[$name]"
}

# need_coturn: skips the case (77) unless coturn and its test clients are installed.
need_coturn() {
    if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null; then
        log "SKIP: coturn is not installed"
        exit 77
    fi
}

# start_coturn NAME PORT [ARGS...]: coturn on 127.0.0.1:PORT (TCP and UDP), plain TURN
# only, long-term credentials test/secret in realm mux443.test, relaying on 127.0.0.1;
# verbose log in $T/NAME.log.
start_coturn() {
    local name=$1 port=$2 minp=$((49152 + RANDOM % 16000))
    shift 2
    start_bg "$name" turnserver -n --listening-ip=127.0.0.1 --listening-port="$port" "$@" \
        --relay-ip=127.0.0.1 --min-port="$minp" --max-port=$((minp + 100)) \
        --lt-cred-mech --user=test:secret --realm=mux443.test --no-tls --no-dtls --no-cli \
        --allow-loopback-peers --log-file=stdout --simple-log --verbose \
        --pidfile="$T/$name.pid" --db="$T/$name.db"
}

# start_mux NAME CONFIG: runs mux443 -c CONFIG, waits for its `ready: listening on` line
# (not any `ready:`: the kernel relays print theirs earlier).
start_mux() {
    local name=$1 conf=$2
    start_bg "$name" "$MUX443" -c "$conf"
    wait_log "$name" 'ready: listening on' 20
}

# stop_mux NAME: SIGTERM; asserts exit 0 and no sanitizer report in the log.
stop_mux() {
    stop "$1"
    assert_not_grep 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/$1.log" \
        "sanitizer report in $1.log"
    ((STOP_RC == 0)) || fail "$1 exited $STOP_RC on SIGTERM (expected 0)"
}

# ---------------------------------------------------------------- assertions

# assert_eq EXPECTED GOT [WHAT]
assert_eq() {
    [[ $1 == "$2" ]] || fail "${3:-value}: expected '$1', got '$2'"
}

# assert_contains HAYSTACK NEEDLE [WHAT]
assert_contains() {
    [[ $1 == *"$2"* ]] || fail "${3:-output}: expected to contain '$2', got: $1"
}

# assert_not_contains HAYSTACK NEEDLE [WHAT]
assert_not_contains() {
    [[ $1 != *"$2"* ]] || fail "${3:-output}: expected NOT to contain '$2', got: $1"
}

# assert_grep REGEX FILE [WHAT]: extended regex; prints the file on failure.
assert_grep() {
    if ! grep -Eq -- "$1" "$2"; then
        echo "---- $2:" >&2
        tail -n 60 "$2" >&2
        fail "${3:-$2}: no line matches /$1/"
    fi
}

# assert_not_grep REGEX FILE [WHAT]
assert_not_grep() {
    if grep -Eq -- "$1" "$2" 2>/dev/null; then
        echo "---- $2 (matching lines):" >&2
        grep -E -- "$1" "$2" | head -20 >&2
        fail "${3:-$2}: unexpected line matching /$1/"
    fi
}

# assert_udp_io NAME: mux443 NAME relayed UDP with the I/O that udp_io = ${UDP_IO:-auto}
# asks for (the UDP tests registered twice run once with UDP_IO=epoll): epoll says nothing;
# auto says once per process whether io_uring was available.
assert_udp_io() {
    if [[ ${UDP_IO:-auto} == epoll ]]; then
        assert_not_grep 'udp: relaying with io_uring|io_uring unavailable' "$T/$1.log"
        return
    fi
    assert_grep 'udp: (relaying with io_uring$|io_uring unavailable .*: relaying with epoll)' \
        "$T/$1.log"
    assert_eq 1 "$(count_log "$1" 'relaying with')" "udp_io said once, not per worker"
}

# client ARGS...: the raw client peer (tests/peers/client.py).
client() { "$PY" "$PEERS/client.py" "$@"; }

# close_line NAME REGEX: the mux443 close-log lines (conn=... reason=) matching REGEX.
close_lines() { grep -E -- 'conn=[0-9]+ .*reason=' "$T/$1.log" | grep -E -- "$2" || true; }

# wait_close NAME REGEX [SECONDS]: waits for a close-log line matching REGEX.
wait_close() { wait_log "$1" "conn=[0-9]+ .*$2.*reason=|conn=[0-9]+ .*reason=.*$2" "${3:-15}"; }
