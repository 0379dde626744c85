#!/usr/bin/env bash
# mux443 --explain on Chromium's captured first ICE-TCP check (USERNAME dptM:RNob) with
# a pool balanced by ufrag: it prints the ufrag and then the server a matching
# ufrag_prefix names, or that the server is decided at run time (table, else fan-out).
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ufrag_lib.sh
source "$INTEG_DIR/ufrag_lib.sh"

VEC=$VECTORS/chromium-ice-tcp-binding.bin
[[ -r $VEC ]] || fail "missing vector $VEC"

# conf FILE SERVERS [BALANCE]: a config with one ICE-TCP backend (nothing is started:
# --explain only reads the file).
conf() {
    cat >"$1" <<INI
[mux443]
listen = 127.0.0.1:1

[backend media]
balance = ${3:-ufrag}
server = $2

[route]
ice-tcp = media
INI
}

# explain CONF: runs --explain < VEC; exit status 0; output in $OUT.
OUT=
explain() {
    local rc=0
    OUT=$("$MUX443" --explain -c "$1" <"$VEC" 2>&1) || rc=$?
    assert_eq 0 "$rc" "--explain -c $(basename "$1") exit status (output: $OUT)"
    assert_line "class     ice-tcp"
    assert_line "ufrag     dptM"
    assert_line "client    RNob"
    assert_line "route     ice-tcp ($1:9)"
}
# assert_line LINE: $OUT holds exactly this line.
assert_line() {
    grep -qxF -- "$1" <<<"$OUT" || {
        printf '%s\n' "$OUT" >&2
        fail "--explain: expected the line '$1'"
    }
}

log "a matching ufrag_prefix names the server"
conf "$T/prefix.ini" "127.0.0.1:14444 ufrag_prefix=abc, 127.0.0.1:14445 ufrag_prefix=dpt, 127.0.0.1:14446"
explain "$T/prefix.ini"
assert_line "backend   media: 127.0.0.1:14444 127.0.0.1:14445 127.0.0.1:14446"
assert_line "server    127.0.0.1:14445 (ufrag_prefix=dpt)"

log "the whole ufrag as the prefix"
conf "$T/exact.ini" "127.0.0.1:14444, 127.0.0.1:14445 ufrag_prefix=dptM"
explain "$T/exact.ini"
assert_line "server    127.0.0.1:14445 (ufrag_prefix=dptM)"

log "no matching prefix (longer than the ufrag, other case, other letters): run time"
conf "$T/runtime.ini" "127.0.0.1:14444 ufrag_prefix=dptMore, 127.0.0.1:14445 ufrag_prefix=DPT, 127.0.0.1:14446 ufrag_prefix=xyz"
explain "$T/runtime.ini"
assert_contains "$OUT" "decided at run time" "--explain without a matching prefix"
line=$(grep -E '^server ' <<<"$OUT") || fail "--explain: no server line: $OUT"
assert_contains "$line" "fan-out to the 3 servers" "--explain: the fan-out's size"
assert_not_contains "$OUT" "ufrag_prefix=" "--explain named a prefix that does not match"

log "no prefix at all: run time"
conf "$T/plain-ufrag.ini" "127.0.0.1:14444, 127.0.0.1:14445"
explain "$T/plain-ufrag.ini"
assert_contains "$(grep -E '^server ' <<<"$OUT")" "decided at run time" "--explain, ufrag pool without prefixes"
assert_contains "$OUT" "fan-out to the 2 servers" "--explain: the fan-out's size"

log "a roundrobin pool: no ufrag server line"
conf "$T/rr.ini" "127.0.0.1:14444, 127.0.0.1:14445" roundrobin
explain "$T/rr.ini"
if grep -qE '^server ' <<<"$OUT"; then fail "--explain printed a ufrag server for a roundrobin pool: $OUT"; fi
