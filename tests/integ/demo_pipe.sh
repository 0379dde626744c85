#!/usr/bin/env bash
# README command 1 under a pipe, as a user runs it: `etc/demo/run.sh 2>&1 | tee demo.log`,
# then Ctrl-C (SIGINT to the whole process group, tee included). Every process the demo
# started (recorded by pid in its state directory: the backends, coturn, mux443, the
# log follower) must be gone afterwards, the demo must say it stopped, and nothing it
# wrote to the pipe or to a file holds an escape sequence. Uses the mux443 under test
# (MUX443_DEMO_BIN: no package step, no build) and a state directory in $T; the demo's
# fixed ports are free in the test's own network namespace.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

if ! command -v turnserver >/dev/null; then
    log "SKIP: coturn (turnserver) is not installed"
    exit 77
fi
if ! ip -6 addr show dev lo | grep -q '::1'; then
    log "SKIP: no ::1 on lo (the demo listens on [::1]:8443 too)"
    exit 77
fi

STATE=$T/demo
# A process group of its own with SIGINT at its default, like the pipeline a shell runs
# for a command typed at a prompt (a background job of this script would ignore SIGINT).
start_bg demo env MUX443_DEMO_BIN="$MUX443" MUX443_DEMO_STATE="$STATE" "$PY" -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execvp("bash", ["bash", "-c", "bash \"$1\" 2>&1 | tee \"$2\"", "demo-pipe"] + sys.argv[1:])
' "$REPO/etc/demo/run.sh" "$T/demo.out"
wait_log demo 'Ctrl-C stops everything' 60
[[ -s $STATE/pids ]] || fail "the demo recorded no pids"
cp "$STATE/pids" "$T/pids"
log "the demo started: $(awk '{print $2}' "$T/pids" | xargs basename -a | tr '\n' ' ')"
assert_eq 7 "$(wc -l <"$T/pids")" "processes recorded by the demo"
pgid=$(ps -o pgid= -p "$(pid_of demo)" | tr -d ' ')
[[ -n $pgid ]] || fail "no process group for the demo"
# The commands it printed work as printed: WSS (trusting the demo CA), TURN and TURNS.
run_printed() { # run_printed REGEX NAME: runs the printed command line matching REGEX
    local cmd
    cmd=$(grep -E -- "$1" "$T/demo.out" | head -n 1 | sed 's/^ *//')
    [[ -n $cmd ]] || fail "the demo printed no command matching /$1/"
    log "running: $cmd"
    timeout 60 bash -c "$cmd" >"$T/$2.log" 2>&1 || fail "$2: exit $? ($(tail -n 3 "$T/$2.log"))"
}
run_printed 'ws_client.py wss://' wss
assert_grep 'signalling echo=hello' "$T/wss.log" "the printed WSS command"
if command -v turnutils_uclient >/dev/null; then
    run_printed 'turnutils_uclient -t -y' turn
    assert_grep 'tot_recv_msgs=[1-9]' "$T/turn.log" "the printed TURN/TCP command"
    run_printed 'turnutils_uclient -t -S' turns
    assert_grep 'tot_recv_msgs=[1-9]' "$T/turns.log" "the printed TURNS command"
fi
# A connection through it, so the log follower writes into the pipe.
curl -s --max-time 5 http://127.0.0.1:8443/piped >/dev/null || fail "demo's mux443 does not answer"
wait_log demo 'path="/piped"' 10

# Ctrl-C reaches every process of the group at once; tee, which does nothing but exit,
# is usually gone before the demo's trap writes its first line. That order is made
# certain here: tee first, then the group.
tee_pid=$(pgrep -g "$pgid" -x tee) || fail "no tee in the demo's group"
log "Ctrl-C: SIGINT to tee ($tee_pid), then to process group $pgid"
kill -INT "$tee_pid"
while kill -0 "$tee_pid" 2>/dev/null; do sleep 0.05; done
kill -INT -- "-$pgid" 2>/dev/null || true # the demo may be stopping already: its pipe closed
wait_exit demo 30
survivors=()
while read -r pid name; do
    kill -0 "$pid" 2>/dev/null && survivors+=("$pid:$name")
done <"$T/pids"
((${#survivors[@]} == 0)) || fail "still running after Ctrl-C: ${survivors[*]}"
if pgrep -g "$pgid" >/dev/null; then
    fail "processes left in the demo's group: $(pgrep -a -g "$pgid")"
fi
if grep -q $'\033' "$T/demo.log" "$T/demo.out"; then
    fail "escape sequences written to a pipe or a file"
fi
log "every process the demo started is gone"
