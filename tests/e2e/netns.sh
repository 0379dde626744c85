# shellcheck shell=bash
# e2e_enter_netns NAME ARGS... -- TOOLS...: what a browser test does before anything
# else. Checks Chromium ($CHROMIUM) and TOOLS (exit 77: skipped, or 1 with
# E2E_REQUIRED=1), installs playwright-core with `npm ci` when missing (before the
# namespace: it needs the registry), then re-runs the calling script with ARGS in a
# network namespace of its own holding only lo (root, or an unprivileged user
# namespace). Returns in that child. E2E_NETNS=off stays on the host's loopback.
e2e_enter_netns() {
    local name=$1 args=() missing=() tool ns
    shift
    while (($#)) && [[ $1 != -- ]]; do
        args+=("$1")
        shift
    done
    shift
    [[ -n ${E2E_NETNS_CHILD:-} ]] && return 0
    say() { printf '[%s %s] %s\n' "$(date +%T.%3N)" "$name" "$*" >&2; }
    skip() {
        [[ ${E2E_REQUIRED:-} == 1 ]] && { say "FAIL (E2E_REQUIRED=1): $*"; exit 1; }
        say "SKIP: $*"
        exit 77
    }
    [[ -x $CHROMIUM ]] || missing+=("chromium ($CHROMIUM)")
    for tool in "$@"; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) || skip "missing ${missing[*]}"
    if [[ ! -f $E2E_DIR/node_modules/playwright-core/package.json ]]; then
        say "installing playwright-core (npm ci in $E2E_DIR)"
        (cd "$E2E_DIR" && flock . bash -c 'test -f node_modules/playwright-core/package.json ||
            npm ci --no-audit --no-fund') >&2 || { say "FAIL: npm ci"; exit 1; }
    fi
    [[ ${E2E_NETNS:-auto} == off ]] && return 0
    if unshare --net true 2>/dev/null; then
        ns=(unshare --net)
    elif unshare --user --map-root-user --net true 2>/dev/null; then
        ns=(unshare --user --map-root-user --net)
    else
        skip "cannot create a network namespace (needs root or unprivileged user namespaces)"
    fi
    export E2E_NETNS_CHILD=1
    exec "${ns[@]}" -- bash -c 'ip link set lo up && exec bash "$@"' e2e-netns "$0" "${args[@]}"
}
