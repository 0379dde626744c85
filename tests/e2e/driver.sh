# shellcheck shell=bash
# Shared by the browser tests, sourced after ../integ/lib.sh.

# run_driver SECONDS SCRIPT VAR=VALUE...: runs the playwright driver SCRIPT (in this
# directory) with the given environment plus CHROMIUM, E2E_PROFILE and E2E_OUT. It runs
# in the background and is waited for, so that a SIGTERM (ctest's timeout) reaches our
# trap at once, which stops it by pid (timeout(1) passes the signal on to node, and
# playwright closes Chromium on SIGTERM). Fails unless every check passed and no
# Chromium process of the test's profile is left.
run_driver() {
    local secs=$1 script=$2 rc=0 leftover pid
    shift 2
    start_bg browser env "$@" CHROMIUM="$CHROMIUM" E2E_PROFILE="$T/profile" E2E_OUT="$T" \
        timeout -k 10 "$secs" node "$E2E_DIR/$script"
    wait "$(pid_of browser)" || rc=$?
    unset "PIDS[browser]"
    grep -E '^e2e: ' "$T/browser.log" >&2 || true
    # Playwright kills Chromium's process group when it exits; make sure none is left.
    if leftover=$(pgrep -f -- "--user-data-dir=$T/profile"); then
        for pid in $leftover; do kill -KILL "$pid" 2>/dev/null || true; done
        fail "Chromium processes left behind: $leftover"
    fi
    ((rc == 0)) || fail "$script exited $rc (see browser.log)"
    assert_grep '^e2e: [0-9]+ passed, 0 failed$' "$T/browser.log" "browser checks"
}
