#!/usr/bin/env bash
# packaging/k8s/*.yaml: valid YAML (python3-yaml), every kustomization resource
# present, and the facts the manifests depend on hold together: selectors match
# the pod labels, probes hit /healthz on the admin port, the pod is non-root with
# only NET_BIND_SERVICE, the Service keeps client addresses (Local + PROXY) and the
# ConfigMap's listener then expects PROXY, the grace period covers drain_timeout,
# and the admin port is not open beyond the pod without a token: admin_token_file
# is a file of a mounted Secret (mux443-admin, a placeholder mux443 refuses), and the
# probes use /healthz only, the one endpoint open without it.
# (mux443 -t on the ConfigMap's mux443.ini is in recipes.sh.) kubeconform or
# kubeval, when installed, also check the schemas.
# shellcheck source=tests/packaging/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
python3 -c 'import yaml' 2>/dev/null || skip "python3-yaml not installed"
K8S=$REPO/packaging/k8s

python3 - "$K8S" <<'PY'
import os, re, sys, yaml

d = sys.argv[1]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)

docs = {}
for name in sorted(os.listdir(d)):
    if not name.endswith(".yaml"):
        continue
    with open(os.path.join(d, name)) as f:
        for doc in yaml.safe_load_all(f):
            if doc is None:
                continue
            check("apiVersion" in doc and "kind" in doc, f"{name}: no apiVersion/kind")
            docs[(doc["kind"], doc.get("metadata", {}).get("name"))] = doc
            docs.setdefault(("file", name), doc)

kust = docs[("Kustomization", None)]
for r in kust["resources"]:
    check(os.path.exists(os.path.join(d, r)), f"kustomization: {r} missing")

dep = docs[("Deployment", "mux443")]
svc = docs[("Service", "mux443")]
cm = docs[("ConfigMap", "mux443")]
sec = docs[("Secret", "mux443-tls")]
pod = dep["spec"]["template"]
labels = pod["metadata"]["labels"]
sel = dep["spec"]["selector"]["matchLabels"]
check(all(labels.get(k) == v for k, v in sel.items()), "Deployment selector does not match pod labels")
check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selector does not match pod labels")
pdb = docs[("PodDisruptionBudget", "mux443")]
check(pdb["spec"]["selector"]["matchLabels"] == sel, "PDB selector differs")

c = pod["spec"]["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
for probe in ("readinessProbe", "livenessProbe"):
    g = c[probe]["httpGet"]
    check(g["path"] == "/healthz", f"{probe} path is {g['path']}")
    check(ports.get(g["port"]) == 9443, f"{probe} port is not the admin port")

psc, csc = pod["spec"]["securityContext"], c["securityContext"]
check(psc.get("runAsNonRoot") is True, "runAsNonRoot not set")
check(isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] != 0, "runAsUser not a non-zero uid")
check(csc["capabilities"]["drop"] == ["ALL"], "capabilities not dropped")
check(csc["capabilities"].get("add") == ["NET_BIND_SERVICE"], "NET_BIND_SERVICE not the only one added")
# File capabilities (setcap in the image) are ignored under no_new_privs.
check(csc.get("allowPrivilegeEscalation") is True or ports["https"] >= 1024,
      "port < 1024 with allowPrivilegeEscalation false: the file capability would be ignored")
check(csc.get("readOnlyRootFilesystem") is True, "root filesystem writable")

check(svc["spec"]["type"] == "LoadBalancer", "Service is not a LoadBalancer")
check(svc["spec"].get("externalTrafficPolicy") == "Local", "externalTrafficPolicy is not Local")
check(any(p["port"] == 443 and p["targetPort"] in ("https", ports["https"]) for p in svc["spec"]["ports"]),
      "Service port 443 does not target the https container port")
ann = svc["metadata"].get("annotations", {})
proxy = any("proxy" in k.lower() for k in ann)

ini = cm["data"]["mux443.ini"]
sect, listener_proxy, admin, drain, token_file = None, {}, None, 30, None
for line in ini.splitlines():
    line = re.sub(r"\s+[;#].*$", "", line).strip()
    if line.startswith("["):
        sect = line.strip("[]").strip()
        continue
    if "=" not in line:
        continue
    k, v = (x.strip() for x in line.split("=", 1))
    if sect and sect.startswith("listener") and k == "proxy_protocol":
        listener_proxy[sect] = v
    if sect == "mux443" and k == "admin":
        admin = v
    if sect == "mux443" and k == "admin_token_file":
        token_file = v
    if sect == "mux443" and k == "drain_timeout":
        m = re.fullmatch(r"(\d+)(s|m)?", v)
        drain = int(m.group(1)) * (60 if m.group(2) == "m" else 1)
check(not proxy or (listener_proxy and all(v == "yes" for v in listener_proxy.values())),
      "the Service asks for PROXY protocol but a ConfigMap listener lacks proxy_protocol = yes")
check(admin is not None and admin.endswith(":9443") and not admin.startswith("127."),
      f"admin = {admin}: the kubelet probes the pod IP, port 9443")
# The admin port listens on the pod IP: without a token any pod the NetworkPolicy
# lets through (or every pod, under a plugin that ignores policies) could register
# ufrags. The token comes from a Secret mounted where admin_token_file points.
check(admin.startswith("127.") or token_file is not None,
      "admin listens beyond the pod without admin_token_file")
if token_file:
    tdir, tkey = os.path.split(token_file)
    tmounts = [m for m in c["volumeMounts"] if m["mountPath"] == tdir]
    check(len(tmounts) == 1, f"no volume mounted at {tdir} for admin_token_file")
    if tmounts:
        tvol = {v["name"]: v for v in pod["spec"]["volumes"]}[tmounts[0]["name"]]
        tsec = tvol.get("secret", {}).get("secretName")
        check(tsec is not None, f"{tdir} is not a Secret volume")
        tdoc = docs.get(("Secret", tsec))
        check(tdoc is not None, f"Secret {tsec} is not in the manifests")
        if tdoc:
            tok = tdoc["stringData"].get(tkey, "")
            check("REPLACE-ME" in tok and " " in tok,
                  f"Secret {tsec} must hold a placeholder mux443 refuses, not a token")
grace = pod["spec"]["terminationGracePeriodSeconds"]
check(grace > drain, f"terminationGracePeriodSeconds {grace} <= drain_timeout {drain}")

mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
vols = {v["name"]: v for v in pod["spec"]["volumes"]}
check(vols["tls"]["secret"]["secretName"] == sec["metadata"]["name"], "tls volume is not the Secret")
check(vols["config"]["configMap"]["name"] == cm["metadata"]["name"], "config volume is not the ConfigMap")
for key in ("tls.crt", "tls.key"):
    check(f"{mounts['tls']}/{key}" in ini, f"mux443.ini does not use {mounts['tls']}/{key}")
check(all("REPLACE-ME" in v for v in sec["stringData"].values()), "the Secret template holds something other than placeholders")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"{len([k for k in docs if k[0] != 'file'])} objects checked")
PY

if command -v kubeconform >/dev/null; then
    kubeconform -strict -summary -ignore-missing-schemas "$K8S"/*.yaml
elif command -v kubeval >/dev/null; then
    kubeval --strict --ignore-missing-schemas "$K8S"/*.yaml
else
    log "kubeconform/kubeval not installed: API schemas not checked"
fi
