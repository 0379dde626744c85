#!/usr/bin/env bash
# SSH through the one port: a real sshd (Debian's openssh-server, started here on a
# loopback port with a throw-away host key, an authorized key and StrictModes=no) behind
# mux443; the real ssh client connects to mux443's port and runs a command. OpenSSH's
# client sends its identification string first, so the connection is class ssh at once
# (no on_timeout needed). Also: the same through TLS that mux443 terminates (ssh with
# ProxyCommand openssl s_client), class ssh-tls.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"
SSHD=/usr/sbin/sshd
for tool in "$SSHD" ssh ssh-keygen; do
    command -v "$tool" >/dev/null || { log "SKIP: $tool not installed"; exit 77; }
done

P=$T/pki
tls_ca "$P"
tls_leaf "$P" ssh ec ca ssh.test ssh.test

PM=$(free_port)
PS=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$T/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$T/user_key"
cp "$T/user_key.pub" "$T/authorized_keys"
ME=$(id -un)
cat >"$T/sshd_config" <<CONF
Port $PS
ListenAddress 127.0.0.1
HostKey $T/host_key
AuthorizedKeysFile $T/authorized_keys
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowUsers $ME
LogLevel VERBOSE
CONF
mkdir -p /run/sshd 2>/dev/null || true
start_bg sshd "$SSHD" -D -e -f "$T/sshd_config"
wait_log sshd "Server listening on 127.0.0.1 port $PS"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
workers = 2

[tls]
cert = $P/ssh.crt
key = $P/ssh.key

[backend sshd]
server = 127.0.0.1:$PS

[route]
ssh = sshd
INI
start_mux mux "$T/mux.ini"
sshopts=(-F none -i "$T/user_key" -o IdentitiesOnly=yes -o BatchMode=yes
    -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$T/known_hosts" -o ConnectTimeout=10)
echo "[127.0.0.1]:$PM $(cat "$T/host_key.pub")" >"$T/known_hosts"
echo "ssh.test $(cat "$T/host_key.pub")" >>"$T/known_hosts"

log "1. ssh through mux443's port runs a command"
out=$(ssh "${sshopts[@]}" -p "$PM" "$ME@127.0.0.1" 'echo ran-on-$((6*7))')
assert_eq "ran-on-42" "$out" "the command's output"
wait_count mux 'class=ssh .*route=ssh backend=sshd' 1

log "2. ssh inside TLS that mux443 terminates (ProxyCommand openssl s_client)"
out=$(ssh "${sshopts[@]}" -o "ProxyCommand=openssl s_client -quiet -connect 127.0.0.1:$PM -servername ssh.test -CAfile $P/ca.crt -verify_return_error" \
    "$ME@ssh.test" 'echo through-tls')
assert_eq "through-tls" "$out" "the command's output through TLS"
wait_count mux 'class=ssh-tls sni="ssh.test".*route=ssh backend=sshd' 1
stop_mux mux
out=$("$MUX443" --explain -c "$T/mux.ini" <"$VECTORS/openssh-client-ident.bin")
assert_contains "$out" "class     ssh" "--explain on OpenSSH's identification string"
assert_contains "$out" "route     ssh " "--explain route"
log "ok"
