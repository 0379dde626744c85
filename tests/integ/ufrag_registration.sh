#!/usr/bin/env bash
# ICE-TCP ufrag table fed through the admin API (/ufrags): a signalling server registers
# ufrag -> media worker (JSON object, JSON array, or "UFRAG HOST:PORT [TTL]" lines), GET
# lists the table, an ICE-TCP client whose server ufrag is registered goes straight to
# that worker (a table hit, no fan-out), DELETE unregisters. Every hostile or malformed
# request gets its 4xx and leaves the table exactly as it was. Registrations survive a
# SIGHUP reload; an entry expires after ufrag_ttl.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ufrag_lib.sh
source "$INTEG_DIR/ufrag_lib.sh"

PM=$(free_port)
PA=$(free_port)
P1=$(free_port) # w1: media, answers every ufrag (it would win a fan-out it is part of)
P2=$(free_port) # w2: media, answers every ufrag
P3=$(free_port) # w3: media2 (the pool of ufrags Mtwo*)
P4=$(free_port) # added to media by the reload; nothing listens
PX=$(free_port) # a server of a roundrobin backend: not a ufrag target
ADMIN=127.0.0.1:$PA
S1=127.0.0.1:$P1 S2=127.0.0.1:$P2 S3=127.0.0.1:$P3 S4=127.0.0.1:$P4 SX=127.0.0.1:$PX

start_bg w1 "$PY" "$PEERS/ice_tcp.py" w1 "$P1"
start_bg w2 "$PY" "$PEERS/ice_tcp.py" w2 "$P2"
start_bg w3 "$PY" "$PEERS/ice_tcp.py" w3 "$P3"

# write_conf [EXTRA MEDIA SERVER]
write_conf() {
    cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = $ADMIN
workers = 2
log_level = debug
ufrag_ttl = 2s
ufrag_grace = 5m
fanout_timeout = 2s

[backend media]
balance = ufrag
server = $S1, $S2${1:+, $1}

[backend media2]
balance = ufrag
server = $S3

[backend plain]
server = $SX

[route m2]
class = ice-tcp
ufrag = Mtwo
backend = media2

[route]
ice-tcp = media
http = plain
INI
}
write_conf
wait_ready w1
wait_ready w2
wait_ready w3
start_mux mux "$T/mux.ini"

ufrag_list >"$T/empty.list"
[[ ! -s $T/empty.list ]] || fail "the table is not empty at start: $(cat "$T/empty.list")"
assert_eq 0 "$(metric mux443_ufrag_entries)" "mux443_ufrag_entries at start"

# ---------------------------------------------------------------- registration
log "register: JSON object, JSON array (PUT), -d line, --data-binary lines"
admin_req POST /ufrags -H 'Content-Type: application/json' \
    --data-binary "{\"ufrag\": \"RegJson1\", \"server\": \"$S2\", \"ttl\": 120}"
expect_http 201 "registered RegJson1 -> media $S2" "POST JSON object"
admin_req PUT /ufrags -H 'Content-Type: application/json' --data-binary "[
  {\"ufrag\":\"RegArr1\",\"server\":\"$S1\",\"ttl\":120},
  {\"ufrag\":\"RegArr2\",\"server\":\"$S2\",\"backend\":\"media\",\"ttl\":120}
]"
expect_http 201 "registered RegArr1 -> media $S1" "PUT JSON array"
assert_contains "$HTTP_BODY" "registered RegArr2 -> media $S2" "PUT JSON array, 2nd entry"
admin_req POST /ufrags "${LINES[@]}" -d "RegLine1 $S1 120"
expect_http 201 "registered RegLine1 -> media $S1" "curl -d line"
admin_req POST /ufrags "${LINES[@]}" --data-binary $'RegLine2 '"$S2"$' 120\n\nMtwoLine3 '"$S3"$' 120\n'
expect_http 201 "registered RegLine2 -> media $S2" "--data-binary lines"
assert_contains "$HTTP_BODY" "registered MtwoLine3 -> media2 $S3" "line for the 2nd ufrag pool"

cat >"$T/expect1.list" <<EOF
MtwoLine3 media2 $S3 registered
RegArr1 media $S1 registered
RegArr2 media $S2 registered
RegJson1 media $S2 registered
RegLine1 media $S1 registered
RegLine2 media $S2 registered
EOF
ufrag_list >"$T/got1.list"
diff -u "$T/expect1.list" "$T/got1.list" >&2 || fail "GET /ufrags after registering"
assert_eq 6 "$(metric mux443_ufrag_entries)" "mux443_ufrag_entries after registering"
exp=$(ufrag_field RegJson1 expires_in)
assert_between "$exp" 100 121 "RegJson1 expires_in (ttl 120)"
assert_eq 0 "$(ufrag_field RegJson1 connections)" "RegJson1 connections"

# Registering again updates the entry (no duplicate).
admin_req POST /ufrags "${LINES[@]}" -d "RegLine1 $S2 120"
expect_http 201 "registered RegLine1 -> media $S2" "re-register RegLine1 on w2"
assert_eq "RegLine1 media $S2 registered" "$(ufrag_list | grep '^RegLine1 ')" "RegLine1 updated"
assert_eq 6 "$(metric mux443_ufrag_entries)" "entries after an update"

# ---------------------------------------------------------------- routing by the table
log "a registered ufrag goes straight to its server: a hit, no fan-out"
fan0=$(metric mux443_ufrag_fanouts_total)
hit0=$(metric 'mux443_ufrag_lookups_total{result="hit"}')
out=$(ice c1 'RegJson1:cli1')
assert_contains "$out" "type=0x0101" "RegJson1: Binding success (client: $(cat "$T/c1.err"))"
assert_contains "$out" "txid-match=yes" "RegJson1: transaction id"
assert_contains "$out" "software=ice:w2" "RegJson1 registered on w2"
wait_close mux 'ufrag="RegJson1"'
assert_grep "class=ice-tcp ufrag=\"RegJson1\" route=ice-tcp backend=media server=$S2 " "$T/mux.log"
assert_grep 'ice:w2 binding username=RegJson1:cli1' "$T/w2.log"
assert_not_grep 'username=RegJson1:' "$T/w1.log" "w1 (not the registered server) saw RegJson1"
assert_eq "$fan0" "$(metric mux443_ufrag_fanouts_total)" "fan-outs after a registered ufrag"
assert_eq $((hit0 + 1)) "$(metric 'mux443_ufrag_lookups_total{result="hit"}')" "lookup hits"

out=$(ice c2 'RegLine1:cli2')
assert_contains "$out" "software=ice:w2" "RegLine1 (updated to w2) (client: $(cat "$T/c2.err"))"
out=$(ice c3 'RegArr1:cli3')
assert_contains "$out" "software=ice:w1" "RegArr1 registered on w1 (client: $(cat "$T/c3.err"))"
out=$(ice c4 'MtwoLine3:cli4')
assert_contains "$out" "software=ice:w3" "MtwoLine3 registered on w3 of media2 (client: $(cat "$T/c4.err"))"
assert_eq "$fan0" "$(metric mux443_ufrag_fanouts_total)" "fan-outs after 4 registered ufrags"
assert_eq $((hit0 + 4)) "$(metric 'mux443_ufrag_lookups_total{result="hit"}')" "lookup hits (4)"

# ---------------------------------------------------------------- DELETE
log "DELETE /ufrags/UFRAG"
admin_req DELETE /ufrags/RegArr1
expect_http 200 "" "DELETE RegArr1"
ufrag_list >"$T/got2.list"
if grep -q '^RegArr1 ' "$T/got2.list"; then fail "RegArr1 still listed after DELETE"; fi
assert_eq 5 "$(wc -l <"$T/got2.list")" "entries listed after DELETE"
assert_eq 5 "$(metric mux443_ufrag_entries)" "mux443_ufrag_entries after DELETE"
admin_req DELETE /ufrags/RegArr1
expect_http 404 "" "DELETE RegArr1 again"
admin_req DELETE /ufrags/NeverThere
expect_http 404 "" "DELETE of an unknown ufrag"
# The deleted ufrag is no longer routed by the table: a miss, then a fan-out.
miss0=$(metric 'mux443_ufrag_lookups_total{result="miss"}')
out=$(ice c5 'RegArr1:cli5')
assert_contains "$out" "type=0x0101" "RegArr1 after DELETE: found by a fan-out (client: $(cat "$T/c5.err"))"
assert_eq $((fan0 + 1)) "$(metric mux443_ufrag_fanouts_total)" "a deleted ufrag is fanned out"
assert_eq $((miss0 + 1)) "$(metric 'mux443_ufrag_lookups_total{result="miss"}')" "lookup misses"
admin_req DELETE /ufrags/RegArr1 # what the fan-out learnt
expect_http 200 "" "DELETE the learnt RegArr1"

# ICE ufrags may hold '+' and '/' (RFC 8445 ice-char).
admin_req POST /ufrags "${LINES[@]}" -d "Ab+/Cd9 $S1 120"
expect_http 201 "registered Ab+/Cd9 -> media $S1" "register a ufrag with + and /"
admin_req DELETE '/ufrags/Ab+/Cd9'
expect_http 200 "" "DELETE /ufrags/Ab+/Cd9"

# ---------------------------------------------------------------- hostile input
# hostile WHAT CODE NEEDLE CURL-ARGS...: POST; expects CODE with NEEDLE in the body and
# the table (GET /ufrags, mux443_ufrag_entries) exactly as before. A failure is recorded
# (the case fails at the end) and the table is put back (unless NO_RESTORE is set), so
# that one daemon bug does not hide the others.
SOFT_FAILS=()
hostile() {
    local what=$1 code=$2 needle=$3
    shift 3
    ufrag_list >"$T/before.list"
    if ! (
        n0=$(metric mux443_ufrag_entries)
        admin_req POST /ufrags "$@"
        expect_http "$code" "$needle" "$what"
        ufrag_list >"$T/after.list"
        diff -u "$T/before.list" "$T/after.list" >&2 ||
            fail "$what: the table changed (GET /ufrags before/after above)"
        assert_eq "$n0" "$(metric mux443_ufrag_entries)" "$what: mux443_ufrag_entries"
    ); then
        SOFT_FAILS+=("$what")
        [[ -n ${NO_RESTORE:-} ]] || restore_table "$T/before.list"
    fi
}
# restore_table LIST: unregisters what is not in LIST, registers again what differs.
restore_table() {
    local u b s src
    ufrag_list >"$T/now.list"
    while read -r u b s src; do
        grep -qxF "$u $b $s $src" "$1" || admin_req DELETE "/ufrags/$u"
    done <"$T/now.list"
    while read -r u b s src; do
        grep -qxF "$u $b $s $src" "$T/now.list" || admin_req POST /ufrags "${LINES[@]}" -d "$u $s 120"
    done <"$1"
    ufrag_list >"$T/now.list"
    diff -u "$1" "$T/now.list" >&2 || fail "could not put the table back"
}
log "hostile and malformed registrations"
J=(-H 'Content-Type: application/json' --data-binary)
hostile "invalid JSON (truncated)" 400 "nothing registered" "${J[@]}" '{"ufrag":"Trunc1","server":'
hostile "invalid JSON (not JSON)" 400 "nothing registered" "${J[@]}" '{ufrag: Trunc2}'
hostile "JSON trailing bytes" 400 "trailing bytes" "${J[@]}" "{\"ufrag\":\"Trail1\",\"server\":\"$S1\"} x"
hostile "unterminated JSON array" 400 "nothing registered" "${J[@]}" "[{\"ufrag\":\"Arr9\",\"server\":\"$S1\"}"
hostile "unknown server" 400 "unknown server '127.0.0.1:1'" "${J[@]}" '{"ufrag":"NoSrv1","server":"127.0.0.1:1"}'
hostile "server of a roundrobin backend" 400 "unknown server '$SX'" "${J[@]}" "{\"ufrag\":\"Plain1\",\"server\":\"$SX\"}"
hostile "server of another ufrag backend" 400 "unknown server '$S3'" "${J[@]}" \
    "{\"ufrag\":\"Other1\",\"server\":\"$S3\",\"backend\":\"media\"}"
hostile "unknown backend" 400 "unknown server" "${J[@]}" "{\"ufrag\":\"NoBack1\",\"server\":\"$S1\",\"backend\":\"nope\"}"
hostile "ufrag too short" 400 "malformed ufrag" "${J[@]}" "{\"ufrag\":\"abc\",\"server\":\"$S1\"}"
hostile "ufrag too long (257)" 400 "malformed ufrag" "${J[@]}" "{\"ufrag\":\"$(printf 'U%.0s' {1..257})\",\"server\":\"$S1\"}"
hostile "ufrag with '-' and '!'" 400 "malformed ufrag" "${J[@]}" "{\"ufrag\":\"bad-ufrag!\",\"server\":\"$S1\"}"
hostile "ufrag with ':'" 400 "malformed ufrag" "${J[@]}" "{\"ufrag\":\"srv:cli1\",\"server\":\"$S1\"}"
hostile "ufrag with a space" 400 "malformed ufrag" "${J[@]}" "{\"ufrag\":\"ab cd\",\"server\":\"$S1\"}"
hostile "empty ufrag" 400 "nothing registered" "${J[@]}" "{\"ufrag\":\"\",\"server\":\"$S1\"}"
hostile "unknown member" 400 "unknown member" "${J[@]}" "{\"ufrag\":\"Member1\",\"server\":\"$S1\",\"owner\":\"x\"}"
hostile "missing server" 400 "required" "${J[@]}" '{"ufrag":"NoServer1"}'
hostile "empty object" 400 "required" "${J[@]}" '{}'
hostile "ttl as a string" 400 "nothing registered" "${J[@]}" "{\"ufrag\":\"TtlStr1\",\"server\":\"$S1\",\"ttl\":\"10\"}"
hostile "negative ttl" 400 "ttl out of range" "${J[@]}" "{\"ufrag\":\"TtlNeg1\",\"server\":\"$S1\",\"ttl\":-1}"
hostile "ttl over a week" 400 "ttl out of range" "${J[@]}" "{\"ufrag\":\"TtlBig1\",\"server\":\"$S1\",\"ttl\":604801}"
hostile "array with one bad entry among good ones" 400 "entry 3: malformed ufrag" "${J[@]}" "[
  {\"ufrag\":\"Good1\",\"server\":\"$S1\"},
  {\"ufrag\":\"Good2\",\"server\":\"$S2\"},
  {\"ufrag\":\"Bad-3\",\"server\":\"$S1\"},
  {\"ufrag\":\"Good4\",\"server\":\"$S2\"}
]"
hostile "array: an unknown server last" 400 "entry 3: unknown server" "${J[@]}" "[
  {\"ufrag\":\"Good5\",\"server\":\"$S1\"},
  {\"ufrag\":\"RegJson1\",\"server\":\"$S1\"},
  {\"ufrag\":\"Good6\",\"server\":\"127.0.0.1:2\"}
]"
hostile "lines: one bad among good" 400 "nothing registered" "${LINES[@]}" --data-binary \
    $'GoodL1 '"$S1"$'\nGoodL2 '"$S2"$' 60\nBadL3 '"$S1"$' 60 extra\nGoodL4 '"$S2"$'\n'
hostile "lines: an unknown server among good" 400 "entry 2: unknown server" "${LINES[@]}" --data-binary \
    $'GoodL5 '"$S1"$'\nGoodL6 127.0.0.1:3\n'
hostile "lines: a malformed ufrag (curl -d)" 400 "malformed ufrag" "${LINES[@]}" -d "a/b% $S1"
hostile "lines: ufrag only" 400 "nothing registered" "${LINES[@]}" -d "Lonely1"
hostile "lines: bad ttl" 400 "nothing registered" "${LINES[@]}" -d "BadTtl1 $S1 soon"
hostile "lines: ttl nan" 400 "nothing registered" "${LINES[@]}" -d "NanTtl1 $S1 nan"
hostile "lines: ttl out of range" 400 "ttl out of range" "${LINES[@]}" -d "BigTtl1 $S1 1e9"
hostile "empty body" 400 "nothing registered" "${LINES[@]}" --data-binary ''
hostile "blank lines only" 400 "nothing registered" "${LINES[@]}" --data-binary $'\n\n\n'
hostile "NUL byte in the body" 400 "" "${LINES[@]}" --data-binary @<(printf 'NulUfrag1 %s\0 60\n' "$S1")
admin_req GET /ufrags/RegJson1
expect_http 405 "" "GET /ufrags/UFRAG"
admin_req DELETE /ufrags
expect_http 405 "" "DELETE /ufrags (no ufrag)"
ufrag_list >"$T/got3.list"
diff -u "$T/got2.list" "$T/got3.list" >&2 || fail "table changed by the hostile requests"

# ---------------------------------------------------------------- SIGHUP
log "registrations survive a SIGHUP reload (media gains a server)"
write_conf "$S4"
reloads=$(count_log mux 'reload: .* loaded')
kill -HUP "$(pid_of mux)"
wait_count mux 'reload: .* loaded' $((reloads + 1)) 15
ufrag_list >"$T/got4.list"
diff -u "$T/got3.list" "$T/got4.list" >&2 || fail "GET /ufrags changed by a SIGHUP reload"
admin_req GET /routes
assert_contains "$HTTP_BODY" "$S4" "the reload took effect (/routes)"
fan1=$(metric mux443_ufrag_fanouts_total)
out=$(ice c6 'RegJson1:cli6')
assert_contains "$out" "software=ice:w2" "RegJson1 after the reload (client: $(cat "$T/c6.err"))"
out=$(ice c7 'MtwoLine3:cli7')
assert_contains "$out" "software=ice:w3" "MtwoLine3 after the reload (client: $(cat "$T/c7.err"))"
assert_eq "$fan1" "$(metric mux443_ufrag_fanouts_total)" "fan-outs after the reload"

# ---------------------------------------------------------------- expiry
log "an entry without a ttl expires after ufrag_ttl (2s)"
admin_req POST /ufrags -H 'Content-Type: application/json' \
    --data-binary "[{\"ufrag\":\"Short1\",\"server\":\"$S1\"},{\"ufrag\":\"Short2\",\"server\":\"$S2\",\"ttl\":0}]"
expect_http 201 "registered Short1 -> media $S1" "register Short1/Short2 (default ttl)"
t0=$(date +%s.%N)
exp=$(ufrag_field Short1 expires_in)
assert_between "$exp" 0 2.5 "Short1 expires_in right after registering (ufrag_ttl = 2s)"
deadline=$((SECONDS + 10))
while ufrag_list >"$T/poll.list" && grep -qE '^Short[12] ' "$T/poll.list"; do
    ((SECONDS < deadline)) || fail "Short1/Short2 still listed 10 s after registering (ufrag_ttl = 2s): $(cat "$T/poll.list")"
    sleep 0.1
done
gone=$("$PY" -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.2f}")' "$t0")
assert_between "$gone" 1.5 10 "seconds until Short1/Short2 expired"
log "expired after ${gone}s"
ufrag_list >"$T/got5.list"
diff -u "$T/got4.list" "$T/got5.list" >&2 || fail "entries with ttl 120 changed when Short1/2 expired"
assert_eq 5 "$(metric mux443_ufrag_entries)" "mux443_ufrag_entries after expiry"

# ---------------------------------------------------------------- oversized
# Last, so that a failure here does not hide the checks above. The body is made of valid
# lines (480 entries, under the 1000-entry limit): only its size is wrong.
log "a body over 64 KiB gets 413 and registers nothing"
"$PY" -c '
import sys
for i in range(480):
    print("Big%04d%s %s 60" % (i, "x" * 200, sys.argv[1]))' "$S1" >"$T/big.txt"
size=$(wc -c <"$T/big.txt")
((size > 100000)) || fail "big.txt is only $size bytes"
head -c 1000000 /dev/zero | tr '\0' x >"$T/huge.txt"
hostile "body of 1 MB" 413 "" --data-binary @"$T/huge.txt"
NO_RESTORE=1 hostile "body of $size bytes" 413 "" -H 'Content-Type: text/plain' --data-binary @"$T/big.txt"

stop_mux mux
((${#SOFT_FAILS[@]} == 0)) || fail "hostile requests mishandled: $(printf '[%s] ' "${SOFT_FAILS[@]}")"
