#!/usr/bin/env bash
# packaging/man/mux443.8 documents every option `mux443 -h` prints, carries the
# binary's version, and both it and the generated mux443.ini(5) (--man-config)
# format without groff warnings.
# shellcheck source=tests/packaging/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
PAGE=$REPO/packaging/man/mux443.8

"$MUX443" -h >"$T/usage.txt"
# Options in the usage text: -x and --long-name words.
mapfile -t opts < <(grep -oE '(^|[[ |])--?[A-Za-z][A-Za-z-]*' "$T/usage.txt" |
    sed -E 's/^[[ |]//' | sort -u)
((${#opts[@]} >= 8)) || fail "found only ${#opts[@]} options in mux443 -h: ${opts[*]}"
# The page's source with troff's \- turned into plain minus signs.
sed 's/\\-/-/g' "$PAGE" >"$T/page.txt"
missing=()
for o in "${opts[@]}"; do
    grep -qE -- "(^|[^A-Za-z-])$o([^A-Za-z-]|$)" "$T/page.txt" || missing+=("$o")
done
((${#missing[@]} == 0)) || fail "options in 'mux443 -h' missing from mux443.8: ${missing[*]}"
log "all ${#opts[@]} options documented: ${opts[*]}"

# The exit statuses in the usage text are documented too.
for s in 0 1 2 3; do
    grep -qE "^\.B $s\$" "$PAGE" || fail "exit status $s missing from mux443.8"
done

version=$("$MUX443" -V | awk '{print $2}')
grep -q "^\.TH MUX443 8 .*\"mux443 $version\"" "$PAGE" ||
    fail "mux443.8 .TH does not say mux443 $version (update it with the CMake version)"

if command -v groff >/dev/null; then
    "$MUX443" --man-config >"$T/mux443.ini.5"
    for p in "$PAGE" "$T/mux443.ini.5"; do
        groff -man -ww -z -Tutf8 "$p" 2>"$T/groff.err" || true
        [[ -s $T/groff.err ]] && { cat "$T/groff.err" >&2; fail "groff warnings in $(basename "$p")"; }
    done
    log "groff -ww: no warnings in mux443.8 and mux443.ini.5"
else
    log "groff not installed: formatting not checked"
fi
