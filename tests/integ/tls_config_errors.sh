#!/usr/bin/env bash
# `mux443 -t` on [tls] sections: certificate problems are reported at the line of the
# cert (or key) key as FILE:LINE: [tls ...] cert|key: ... naming the file, and the check
# exits 1: key not matching the certificate, expired certificate, certificate not yet
# valid, chain out of order (intermediate before the leaf), cert file missing, a
# directory or not PEM, key file missing, encrypted key (an error, not a passphrase
# prompt that blocks on stdin), no key = at all, one key for
# two certificates, two default sections. Good configurations (one cert; leaf +
# intermediate chain; RSA + ECDSA pair) exit 0, and so does mux443 really start with one.
# A daemon started on a bad file exits 1 without listening.
source "$(dirname "$0")/lib.sh" "$@"
source "$PEERS/tls_certs.sh"

P=$T/pki
tls_ca "$P"
tls_intermediate "$P" inter ca
tls_leaf "$P" good rsa ca good.test good.test
tls_leaf "$P" good-ec ec ca good.test good.test
tls_leaf "$P" other ec ca other.test other.test
tls_leaf "$P" leaf ec inter leaf.test leaf.test
tls_leaf_dates "$P" expired ca 20200101000000Z 20200201000000Z expired.test expired.test
tls_leaf_dates "$P" future ca 20990101000000Z 20990201000000Z future.test future.test
[[ -s $P/expired.crt && -s $P/future.crt ]] || fail "openssl ca could not make the dated certificates: $(cat "$P"/*.ca.log)"
cat "$P/leaf.crt" "$P/inter.crt" >"$P/chain-ok.pem"
cat "$P/inter.crt" "$P/leaf.crt" >"$P/chain-reversed.pem"
echo "this is not a certificate" >"$P/garbage.pem"
openssl pkey -in "$P/good.key" -aes256 -passout pass:secret -out "$P/encrypted.key" 2>/dev/null
mkdir "$P/a-directory"

PM=$(free_port)
PWEB=$(free_port)
# conf NAME TLS-SECTION-LINES...: $T/NAME.ini; the [tls] section starts on line 5.
conf() {
    local name=$1 l
    shift
    {
        printf '[mux443]\nlisten = 127.0.0.1:%s\nworkers = 1\n\n' "$PM"
        for l in "$@"; do printf '%s\n' "$l"; done
        printf '\n[backend web]\nserver = 127.0.0.1:%s\n\n[route]\nhttp = web\n' "$PWEB"
    } >"$T/$name.ini"
}
# check NAME: runs mux443 -t on $T/NAME.ini; output in $T/NAME.out, status in RC.
check() {
    RC=0
    timeout 20 "$MUX443" -t -c "$T/$1.ini" </dev/null >"$T/$1.out" 2>&1 || RC=$?
}
# expect_error NAME LINE SECTION KEY REGEX: exit 1, and a line
# `FILE:LINE: [SECTION] KEY: ...` that matches REGEX.
expect_error() {
    local name=$1 line=$2 sec=$3 key=$4 re=$5 f="$T/$1.ini"
    check "$name"
    assert_eq 1 "$RC" "$name: mux443 -t exit status ($(cat "$T/$name.out"))"
    assert_grep "^$(re "$f"):$line: \\[$sec\\] $key: .*$re" "$T/$name.out" "$name: error at line $line"
    assert_not_grep 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/$name.out"
}
expect_valid() {
    check "$1"
    assert_eq 0 "$RC" "$1: mux443 -t exit status ($(cat "$T/$1.out"))"
    assert_not_grep ': \[tls' "$T/$1.out" "$1: no [tls] complaint"
}
re() { sed 's/[][\.*^$/+?(){}|]/\\&/g' <<<"$1"; } # a path as a regex

# Good files.
conf good "[tls]" "cert = $P/good.crt" "key = $P/good.key"
expect_valid good
conf chain-ok "[tls]" "cert = $P/chain-ok.pem" "key = $P/leaf.key"
expect_valid chain-ok
conf pair "[tls dual]" "cert = $P/good.crt, $P/good-ec.crt" "key = $P/good.key, $P/good-ec.key" "default = yes"
expect_valid pair

# Key not matching the certificate: reported at the key line, both paths named.
conf mismatch "[tls]" "cert = $P/good.crt" "key = $P/other.key"
expect_error mismatch 7 tls key "$(re "$P/other.key").*does not match.*$(re "$P/good.crt")"
# In an RSA + ECDSA pair, keys in the wrong order.
conf pair-swapped "[tls dual]" "cert = $P/good.crt, $P/good-ec.crt" "key = $P/good-ec.key, $P/good.key"
expect_error pair-swapped 7 'tls dual' key "does not match.*$(re "$P/good.crt")"
# Expired, not yet valid.
conf expired "[tls]" "cert = $P/expired.crt" "key = $P/expired.key"
expect_error expired 6 tls cert "$(re "$P/expired.crt").*expired"
conf future "[tls old]" "key = $P/future.key" "cert = $P/future.crt"
expect_error future 7 'tls old' cert "$(re "$P/future.crt").*not valid yet"
# Intermediate before the leaf.
conf reversed "[tls]" "cert = $P/chain-reversed.pem" "key = $P/leaf.key"
expect_error reversed 6 tls cert "$(re "$P/chain-reversed.pem").*out of order"
# Certificate file missing, a directory, not PEM.
conf nocert "[tls]" "cert = $P/missing.crt" "key = $P/good.key"
expect_error nocert 6 tls cert "$(re "$P/missing.crt").*No such file"
conf dircert "[tls]" "cert = $P/a-directory" "key = $P/good.key"
expect_error dircert 6 tls cert "$(re "$P/a-directory")"
conf garbage "[tls]" "cert = $P/garbage.pem" "key = $P/good.key"
expect_error garbage 6 tls cert "no PEM certificate in $(re "$P/garbage.pem")"
# Key file missing, encrypted; no key at all; fewer keys than certificates.
conf nokeyfile "[tls]" "cert = $P/good.crt" "key = $P/missing.key"
expect_error nokeyfile 7 tls key "$(re "$P/missing.key").*No such file"
conf encrypted "[tls]" "cert = $P/good.crt" "key = $P/encrypted.key"
expect_error encrypted 7 tls key "$(re "$P/encrypted.key")"
conf nokey "[tls]" "cert = $P/good.crt"
expect_error nokey 5 tls key "0 key"
conf onekey "[tls]" "cert = $P/good.crt, $P/good-ec.crt" "key = $P/good.key"
expect_error onekey 7 tls key "1 key"
conf nocertkey "[tls]" "key = $P/good.key"
expect_error nocertkey 5 tls cert "missing"
# Two defaults: [tls] is one unless it says default = no.
conf twodefaults "[tls]" "cert = $P/good.crt" "key = $P/good.key" "" \
    "[tls other]" "cert = $P/other.crt" "key = $P/other.key" "default = yes"
expect_error twodefaults 12 'tls other' default "already set on line 5"
conf onedefault "[tls]" "cert = $P/good.crt" "key = $P/good.key" "default = no" "" \
    "[tls other]" "cert = $P/other.crt" "key = $P/other.key" "default = yes"
expect_valid onedefault

# Every bad section is reported, in line order, in one run.
conf several "[tls a]" "cert = $P/expired.crt" "key = $P/expired.key" "" \
    "[tls b]" "cert = $P/good.crt" "key = $P/other.key"
expect_error several 6 'tls a' cert expired
assert_grep "^$(re "$T/several.ini"):11: \\[tls b\\] key: .*does not match" "$T/several.out"

# The daemon refuses a bad file at start (exit 1, never ready) and starts on a good one.
rc=0
timeout 20 "$MUX443" -c "$T/expired.ini" >"$T/start-bad.log" 2>&1 || rc=$?
assert_eq 1 "$rc" "mux443 started on a file with an expired certificate: exit status"
assert_grep 'expired' "$T/start-bad.log"
assert_not_grep 'ready:' "$T/start-bad.log"
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
wait_ready web
start_mux mux "$T/chain-ok.ini"
printf 'GET /chain HTTP/1.0\r\nHost: leaf.test\r\n\r\n' |
    timeout 15 openssl s_client -connect "127.0.0.1:$PM" -servername leaf.test -ign_eof \
        -CAfile "$P/ca.crt" -verify_hostname leaf.test -verify_return_error >"$T/sc-chain.out" 2>&1 || true
assert_grep 'Verification: OK' "$T/sc-chain.out" "leaf + intermediate chain verified by a client trusting the root only"
assert_grep '^web:web method=GET path=/chain ' "$T/sc-chain.out"
stop_mux mux

# An encrypted key is an error, never a passphrase prompt: with stdin open (a FIFO that
# nobody writes, as under `docker run -i` or a terminal) the check must not wait for it.
mkfifo "$T/stdin.fifo"
exec 7<>"$T/stdin.fifo"
rc=0
timeout -k 2 10 "$MUX443" -t -c "$T/encrypted.ini" <&7 >"$T/encrypted-stdin.out" 2>&1 || rc=$?
exec 7<&-
assert_eq 1 "$rc" "mux443 -t with an encrypted key and stdin open: exit status (124/137 = blocked reading a passphrase)"
assert_not_grep 'pass ?phrase' "$T/encrypted.out" "mux443 -t prompted for a PEM passphrase"
