#!/usr/bin/env bash
# mux443 -t passes on etc/mux443.ini, every etc/recipes/*.ini and the mux443.ini
# in the Kubernetes ConfigMap (certificates made up on the fly, see lib.sh).
# shellcheck source=tests/packaging/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need openssl

bad=0
for f in "$REPO/etc/mux443.ini" "$REPO"/etc/recipes/*.ini; do
    check_config "$MUX443" "$f" || bad=$((bad + 1))
done

# The ConfigMap's data["mux443.ini"] (python3-yaml, when installed).
if python3 -c 'import yaml' 2>/dev/null; then
    python3 - "$REPO/packaging/k8s/configmap.yaml" "$T/k8s-mux443.ini" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
open(sys.argv[2], "w").write(doc["data"]["mux443.ini"])
PY
    check_config "$MUX443" "$T/k8s-mux443.ini" || bad=$((bad + 1))
else
    log "python3-yaml missing: ConfigMap not checked"
fi
((bad == 0)) || fail "$bad configuration(s) rejected by mux443 -t"
