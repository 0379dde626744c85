#!/usr/bin/env bash
# packaging/monitoring: the alert rules pass `promtool check rules` (and a promtool rule
# test: the backend-down and certificate alerts fire on made-up series), the dashboard
# is valid JSON, and every metric name that the dashboard and the rules use exists in
# the /metrics of a running mux443 (configured with every kind of series: TLS, a health
# checked backend, a balance = ufrag backend), so a renamed metric fails here.
# shellcheck source=tests/integ/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source=tests/integ/ops_lib.sh
source "$INTEG_DIR/ops_lib.sh"
# shellcheck source=tests/peers/tls_certs.sh
source "$PEERS/tls_certs.sh"

if ! command -v promtool >/dev/null; then
    log "SKIP: promtool (Debian package prometheus) is not installed"
    exit 77
fi
MON=$REPO/packaging/monitoring
RULES=$MON/mux443-alerts.yml
DASH=$MON/mux443-dashboard.json

out=$(promtool check rules "$RULES" 2>&1) || fail "promtool check rules: $out"
log "$out"

# A rule test: made-up series, alerts that must (and must not) fire.
cat >"$T/rules_test.yml" <<YAML
rule_files: ["$RULES"]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'mux443_backend_server_up{job="mux443",instance="a",backend="media",server="s1"}'
        values: '0x10'
      - series: 'mux443_backend_server_up{job="mux443",instance="a",backend="media",server="s2"}'
        values: '0x10'
      - series: 'mux443_backend_server_up{job="mux443",instance="a",backend="web",server="w1"}'
        values: '1x10'
      - series: 'mux443_backend_server_up{job="mux443",instance="a",backend="web",server="w2"}'
        values: '0x10'
      - series: 'mux443_tls_certificate_expiry_seconds{job="mux443",instance="a",tls="tls"}'
        values: '864000x120'
    alert_rule_test:
      - eval_time: 5m
        alertname: Mux443BackendDown
        exp_alerts:
          - exp_labels: {severity: critical, job: mux443, instance: a, backend: media}
            exp_annotations:
              summary: "mux443 a: every server of backend media is down"
              description: "Health checks fail on all servers of media: its clients are being closed."
      - eval_time: 90m
        alertname: Mux443CertificateExpiringSoon
        exp_alerts:
          - exp_labels: {severity: warning, job: mux443, instance: a, tls: tls}
            exp_annotations:
              summary: "mux443 a: certificate of [tls tls] expires in 9d 22h 30m 0s"
              description: "Renew it and send SIGHUP (the ACME recipe's hook does)."
      - eval_time: 90m
        alertname: Mux443CertificateExpired
        exp_alerts: []
YAML
out=$(promtool test rules "$T/rules_test.yml" 2>&1) || fail "promtool test rules: $out"

P=$T/pki
tls_ca "$P"
tls_leaf "$P" site ec ca site.test site.test
PM=$(free_port)
PA=$(free_port)
PWEB=$(free_port)
PICE=$(free_port)
start_bg web "$PY" "$PEERS/http_server.py" web "$PWEB"
start_bg ice "$PY" "$PEERS/ice_tcp.py" ice "$PICE"
cat >"$T/mux.ini" <<INI
[mux443]
listen = 127.0.0.1:$PM
admin = 127.0.0.1:$PA

[tls]
cert = $P/site.crt
key = $P/site.key

[backend web]
server = 127.0.0.1:$PWEB
health = tcp

[backend media]
server = 127.0.0.1:$PICE
balance = ufrag

[route]
http = web
ice-tcp = media
INI
wait_ready web
wait_ready ice
start_mux mux "$T/mux.ini"
metrics "$PA" "$T/m.prom"

"$PY" - "$DASH" "$RULES" "$T/m.prom" <<'PYEOF' || fail "metric names: see above"
import json, re, sys
dash = json.load(open(sys.argv[1]))
exprs = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("expr", "query") and isinstance(v, str):
                exprs.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(dash)
rules = open(sys.argv[2]).read()
exprs += re.findall(r"expr: *\|?\n?((?:.*\n)*?)(?=^ {8}\w)", rules, re.M)
text = "\n".join(exprs)
used = set(re.findall(r"\b((?:mux443|process)_[a-z0-9_]+)\b", text))
have = set()
for line in open(sys.argv[3]):
    m = re.match(r"# TYPE (\S+) ", line) or re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
    if m:
        have.add(m.group(1))
missing = sorted(used - have)
print(f"{len(used)} metric names used by the dashboard and the rules; all in /metrics" if not missing
      else f"used but not in /metrics: {missing}")
assert len(used) >= 15, sorted(used)
assert not missing
PYEOF
stop_mux mux
