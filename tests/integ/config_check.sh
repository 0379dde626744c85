#!/usr/bin/env bash
# mux443 -t: the example config passes (exit 0); broken configs written here fail with
# exit 1 and every expected FILE:LINE: [section] key: message in ONE run; usage errors
# exit 2.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"

rc=0
"$MUX443" -t -c "$REPO/etc/mux443.ini" >"$T/ok.out" 2>&1 || rc=$?
assert_eq 0 "$rc" "mux443 -t etc/mux443.ini exit status (output: $(cat "$T/ok.out"))"

# Line numbers matter: keep this heredoc's layout in step with the expectations below.
LONG=$(printf 'x%.0s' {1..300})
F=$T/bad.ini
cat >"$F" <<INI
[mux443]
listen = 127.0.0.1:1
workers = 2
colour = blue
peek_timeout = 99999

[nonsense]
foo = bar

[backend web]
server = 127.0.0.1:99999

[backend web]
server = 127.0.0.1:2

[backend ok]
server = 127.0.0.1:3
proxy_protocol = v3

[route r1]
host = a.test
backend = nowhere

[route]
http = ok
stun = missing
comment = $LONG
this line is not key value
INI
# line:   1 [mux443]   4 colour   5 peek_timeout   7 [nonsense]   11 bad address
#        13 duplicate [backend web]   18 proxy_protocol v3   22 unknown backend
#        26 unknown backend   27 over-long line   28 syntax error
rc=0
"$MUX443" -t -c "$F" >"$T/bad.out" 2>&1 || rc=$?
cat "$T/bad.out" >&2
assert_eq 1 "$rc" "mux443 -t on a broken config: exit status"
expect() { # LINE REGEX-AFTER-"FILE:LINE: "
    assert_grep "^$(printf '%s' "$F" | sed 's/[.[\*^$/]/\\&/g'):$1: $2" "$T/bad.out" "error for line $1"
}
expect 4 '\[mux443\] colour: unknown key'
expect 5 '\[mux443\] peek_timeout: .*(range|99999)'
expect 7 '\[nonsense\].*unknown section'
expect 11 '\[backend web\] server: .*127\.0\.0\.1:99999'
expect 13 '\[backend web\].*duplicate'
expect 18 '\[backend ok\] proxy_protocol: .*v3'
expect 22 '\[route r1\] backend: unknown backend.*nowhere'
expect 26 '\[route\] stun: unknown backend.*missing'
expect 27 '.*(long|200)'
expect 28 '.*(key|=|syntax|expected)'
# Every message has the FILE:LINE: prefix (bar the final "mux443: FILE: ... invalid").
if grep -v "^mux443: " "$T/bad.out" | grep -vq "^$F:[0-9][0-9]*: "; then
    fail "message without a FILE:LINE: prefix: $(grep -v "^mux443: " "$T/bad.out" | grep -v "^$F:[0-9]*: ")"
fi

# A config with no error but an unreadable path: exit 1, message names the file.
rc=0
"$MUX443" -t -c "$T/does-not-exist.ini" >"$T/missing.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 -t on a missing file"
assert_grep 'does-not-exist\.ini' "$T/missing.out"

# Usage errors: exit 2.
rc=0
"$MUX443" --no-such-option >"$T/usage.out" 2>&1 || rc=$?
assert_eq 2 "$rc" "unknown option: exit status"
rc=0
"$MUX443" -t -c >"$T/usage2.out" 2>&1 || rc=$?
assert_eq 2 "$rc" "-c without a file: exit status"
