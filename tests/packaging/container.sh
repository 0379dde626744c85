#!/usr/bin/env bash
# The container image, built and started for real (no registry: the base image is
# made from Debian packages). Needs root and podman; skipped (77) only when podman is
# missing.
#  1. Base: localhost/debian:12-slim, made once with `debootstrap --variant=minbase
#     bookworm` + `podman import` and reused (MUX443_REBUILD_BASE=1 makes it again).
#  2. `podman build --format docker --network host --isolation chroot --build-arg
#     DEBIAN=localhost/debian:12-slim -f packaging/Dockerfile` (docker format: OCI
#     images have no HEALTHCHECK); the build stage installs the -dev packages from
#     Debian's archive.
#  3. `podman image inspect`: user 443:443, entrypoint /usr/sbin/mux443 with
#     -c /etc/mux443/mux443.ini, port 443/tcp exposed, the HEALTHCHECK, SIGTERM; in the
#     mounted image, user mux443 is 443:443 and /usr/sbin/mux443 has the file
#     capability cap_net_bind_service=ep.
#  4. Start: `podman run` is tried (it fails on these build machines: crun cannot
#     setrlimit, then cannot use the hybrid cgroup hierarchy); in any case the binary is
#     started from the mounted image filesystem with `chroot --userspec=443:443`, the
#     image's command line and shipped configuration, in a network namespace of its
#     own, with the example's web backend (127.0.0.1:18080) run by the test. Checked:
#     the image's HEALTHCHECK script and GET /healthz answer 200, an HTTP request to
#     127.0.0.1:8443 is routed to the web backend, every thread runs as uid 443 with no
#     capability effective and no_new_privs, and SIGTERM ends it with status 0.
# shellcheck source=tests/packaging/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
command -v podman >/dev/null || skip "podman not installed (packaging/install-deps.sh test): the image is not built"
(($(id -u) == 0)) || fail "needs root (podman image mount, chroot)"
for t in unshare chroot getcap curl python3; do
    command -v "$t" >/dev/null || fail "$t is required"
done

BASE=localhost/debian:12-slim
IMG=localhost/mux443-test:$$
MNT=
cleanup_image() {
    [[ -n $MNT ]] && podman image unmount "$IMG" >/dev/null 2>&1
    podman rmi -f "$IMG" >/dev/null 2>&1 || true
}
trap 'rc=$?; cleanup_image; (exit "$rc"); _pkg_cleanup' EXIT

log "1. base image $BASE"
(
    flock 9 # one debootstrap at a time on a shared machine
    if [[ -n ${MUX443_REBUILD_BASE:-} ]] || ! podman image exists "$BASE"; then
        command -v debootstrap >/dev/null || fail "$BASE is missing and debootstrap is not installed"
        log "making $BASE with debootstrap (a few minutes, once)"
        rm -rf "$T/rootfs"
        debootstrap --variant=minbase bookworm "$T/rootfs" >"$T/debootstrap.log" 2>&1 ||
            { tail -n 20 "$T/debootstrap.log" >&2; fail "debootstrap"; }
        tar -C "$T/rootfs" -c . | podman import - "$BASE" >/dev/null || fail "podman import"
        rm -rf "$T/rootfs"
    else
        log "reusing $BASE"
    fi
) 9>/var/tmp/mux443-debian-base.lock

log "2. podman build"
t0=$SECONDS
podman build --format docker --network host --isolation chroot --build-arg "DEBIAN=$BASE" \
    -f "$REPO/packaging/Dockerfile" -t "$IMG" "$REPO" >"$T/build.log" 2>&1 ||
    { tail -n 30 "$T/build.log" >&2; fail "podman build"; }
log "built $IMG in $((SECONDS - t0)) s"

log "3. inspect"
podman image inspect "$IMG" >"$T/inspect.json"
python3 - "$T/inspect.json" <<'PY' || fail "image configuration (above)"
import json, sys
img = json.load(open(sys.argv[1]))[0]
c = img["Config"]
errors = []
def check(cond, msg):
    if not cond:
        errors.append(msg)
check(c.get("User") == "443:443", f"User is {c.get('User')!r}, not 443:443")
check(c.get("Entrypoint") == ["/usr/sbin/mux443"], f"Entrypoint is {c.get('Entrypoint')}")
check(c.get("Cmd") == ["-c", "/etc/mux443/mux443.ini"], f"Cmd is {c.get('Cmd')}")
check("443/tcp" in (c.get("ExposedPorts") or {}), f"ExposedPorts is {c.get('ExposedPorts')}")
check(c.get("StopSignal") == "SIGTERM", f"StopSignal is {c.get('StopSignal')}")
hc = img.get("Healthcheck") or c.get("Healthcheck") or {}
check(hc.get("Test") == ["CMD", "/usr/lib/mux443/healthcheck"], f"Healthcheck is {hc}")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(json.dumps({k: c.get(k) for k in ("User", "Entrypoint", "Cmd", "ExposedPorts")}))
PY
MNT=$(podman image mount "$IMG") || fail "podman image mount"
[[ -x $MNT/usr/sbin/mux443 ]] || fail "no /usr/sbin/mux443 in the image"
caps=$(getcap "$MNT/usr/sbin/mux443")
log "getcap: $caps"
[[ $caps == *cap_net_bind_service=ep* ]] || fail "no cap_net_bind_service=ep file capability on /usr/sbin/mux443"
grep -q '^mux443:x:443:443:' "$MNT/etc/passwd" || fail "user mux443 is not 443:443 in the image"
[[ -x $MNT/usr/lib/mux443/healthcheck ]] || fail "no HEALTHCHECK script in the image"

log "4. start"
rc=0
timeout 60 podman run --rm --network none --no-healthcheck "$IMG" -V >"$T/run.log" 2>&1 || rc=$?
if ((rc == 0)); then
    log "podman run works here: $(tail -n 1 "$T/run.log")"
else
    log "podman run fails here (exit $rc: $(grep -m1 -o 'crun: .*' "$T/run.log" || tail -n 1 "$T/run.log")): starting from the mounted image"
fi
cat >"$T/web-hello" <<<'hello from the web backend'
cat >"$T/start.sh" <<'SH'
set -euo pipefail
ip link set lo up
fail() { echo "FAIL: $*" >&2; exit 1; }
python3 -m http.server 18080 --bind 127.0.0.1 --directory "$WEB" >"$T/web.log" 2>&1 &
web=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18080/web-hello && break; sleep 0.1; done
# The image's ENTRYPOINT + CMD, as the image's user.
chroot --userspec=443:443 "$MNT" /usr/sbin/mux443 -c /etc/mux443/mux443.ini >"$T/mux.log" 2>&1 &
mux=$!
for _ in $(seq 300); do
    grep -q 'ready:' "$T/mux.log" && break
    kill -0 "$mux" 2>/dev/null || { cat "$T/mux.log" >&2; fail "mux443 exited"; }
    sleep 0.1
done
grep -q 'ready:' "$T/mux.log" || { cat "$T/mux.log" >&2; fail "mux443 not ready in 30 s"; }
chroot --userspec=443:443 "$MNT" /usr/lib/mux443/healthcheck || fail "the image's HEALTHCHECK script failed"
code=$(curl -s -o "$T/hz" -w '%{http_code}' http://127.0.0.1:9443/healthz)
[[ $code == 200 && $(cat "$T/hz") == ok ]] || fail "GET /healthz: $code $(cat "$T/hz")"
body=$(curl -s --max-time 5 http://127.0.0.1:8443/web-hello)
[[ $body == "hello from the web backend" ]] || fail "HTTP through mux443 to the web backend: '$body'"
for st in /proc/"$mux"/task/*/status; do
    uid=$(awk '/^Uid:/ { print $2 $3 $4 $5 }' "$st")
    [[ $uid == 443443443443 ]] || fail "$st: Uid $uid"
    [[ $(awk '/^CapEff:/ { print $2 }' "$st") == 0000000000000000 ]] || fail "$st: $(grep CapEff "$st")"
    [[ $(awk '/^NoNewPrivs:/ { print $2 }' "$st") == 1 ]] || fail "$st: no_new_privs off"
done
kill -TERM "$mux"
rc=0
wait "$mux" || rc=$?
kill "$web"
((rc == 0)) || { cat "$T/mux.log" >&2; fail "mux443 exited $rc on SIGTERM"; }
echo "served /healthz and HTTP from the image's filesystem as uid 443"
SH
mkdir -p "$T/www"
cp "$T/web-hello" "$T/www/web-hello"
chmod 755 "$T" "$T/www"
export T MNT WEB=$T/www
unshare --net -- bash "$T/start.sh" >&2 || fail "starting from the image (above)"
tail -n 3 "$T/mux.log" >&2
