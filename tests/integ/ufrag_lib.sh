# Helpers shared by the ufrag_*.sh cases (ICE-TCP routing by ufrag): the admin API
# (/ufrags, /metrics) and ICE-TCP clients. Source it after lib.sh; set ADMIN=127.0.0.1:PORT.
# Not a case by itself (it is not in MUX443_INTEG_CASES).
# shellcheck shell=bash

# admin_req METHOD PATH [CURL ARGS...]: one admin request; sets HTTP_CODE and HTTP_BODY.
# Fails if curl cannot talk to the admin listener at all.
HTTP_CODE=
HTTP_BODY=
# The line form's content type (curl -d alone sends one the admin API refuses).
LINES=(-H 'Content-Type: text/x-mux443-ufrags')
admin_req() {
    local method=$1 path=$2 rc=0
    shift 2
    HTTP_CODE=$(curl -sS --max-time 10 -H 'Expect:' -o "$T/admin.resp" -w '%{http_code}' \
        -X "$method" "$@" "http://$ADMIN$path" 2>"$T/admin.curl.err") || rc=$?
    HTTP_BODY=$(cat "$T/admin.resp" 2>/dev/null || true)
    ((rc == 0)) || fail "curl -X $method http://$ADMIN$path failed (rc=$rc): $(cat "$T/admin.curl.err")"
}

# expect_http CODE NEEDLE WHAT: asserts the last admin_req's status and that its body
# contains NEEDLE (empty NEEDLE: any body).
expect_http() {
    assert_eq "$1" "$HTTP_CODE" "$3: HTTP status (body: ${HTTP_BODY:0:300})"
    [[ -z $2 ]] || assert_contains "$HTTP_BODY" "$2" "$3: response body"
}

# ufrag_list: GET /ufrags, checked to be a JSON list of entries with the documented
# members; prints one sorted line per entry: UFRAG BACKEND SERVER SOURCE (connections
# and expires_in are left out: they change with time; see ufrag_field).
ufrag_list() {
    admin_req GET /ufrags
    assert_eq 200 "$HTTP_CODE" "GET /ufrags status (body: $HTTP_BODY)"
    "$PY" -c '
import json, sys
doc = json.loads(sys.stdin.read())
assert isinstance(doc, list), "not a JSON list"
keys = {"ufrag", "backend", "server", "source", "connections", "expires_in"}
for e in doc:
    assert set(e) == keys, "members %r" % sorted(e)
    assert e["source"] in ("registered", "fanout"), e["source"]
for e in sorted(doc, key=lambda e: e["ufrag"]):
    print(e["ufrag"], e["backend"], e["server"], e["source"])
' <<<"$HTTP_BODY" || fail "GET /ufrags is not the documented JSON list: $HTTP_BODY"
}

# ufrag_field UFRAG MEMBER: that member of that entry in GET /ufrags (empty if absent).
ufrag_field() {
    admin_req GET /ufrags
    "$PY" -c '
import json, sys
for e in json.loads(sys.stdin.read()):
    if e["ufrag"] == sys.argv[1]:
        print(e[sys.argv[2]])
' "$1" "$2" <<<"$HTTP_BODY"
}

# metric SERIES: the value of one series of /metrics, e.g. metric
# 'mux443_ufrag_lookups_total{result="hit"}'. Fails if the series is missing.
metric() {
    local v
    admin_req GET /metrics
    assert_eq 200 "$HTTP_CODE" "GET /metrics status"
    v=$(awk -v k="$1" '$1 == k { print $2 }' <<<"$HTTP_BODY")
    [[ -n $v ]] || fail "no series $1 in /metrics"
    echo "$v"
}

# ice CLIENT_NAME USERNAME [client.py ARGS...]: one ICE-TCP connection through mux443
# ($PM) with a framed Binding request (USERNAME = SERVER:CLIENT ufrag), reading one
# framed answer. Prints the decoded answer; the status line is in $T/CLIENT_NAME.err.
ice() {
    local name=$1 user=$2
    shift 2
    client 127.0.0.1 "$PM" --ice-binding "$user" --frame "$@" 2>"$T/$name.err" || true
}

# client_t NAME: the t= of the client status line in $T/NAME.err (seconds).
client_t() { sed -nE 's/.*client: .* t=([0-9.]+).*/\1/p' "$T/$1.err" | tail -n1; }

# assert_between X LO HI WHAT: LO <= X < HI (decimals).
assert_between() {
    "$PY" -c 'import sys; x, lo, hi = map(float, sys.argv[1:4]); sys.exit(0 if lo <= x < hi else 1)' \
        "$1" "$2" "$3" || fail "$4: expected in [$2, $3), got $1"
}

# re_escape TEXT: TEXT with the extended-regex metacharacters escaped.
# shellcheck disable=SC2001,SC2016 # a sed bracket expression, not a shell expansion
re_escape() { sed 's#[]*.^$()+?{}|\\[]#\\&#g' <<<"$1"; }
