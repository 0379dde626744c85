#!/usr/bin/env bash
# packaging/build-deb.sh builds the .deb; then, from the .deb unpacked with
# dpkg-deb -x (nothing is installed): the packaged binary reports the CMake
# version and passes -t on /etc/mux443/mux443.ini and every shipped example, both
# man pages are there (mux443.ini.5 identical to the packaged binary's
# --man-config), the unit, conffile and maintainer scripts are in place, and
# lintian (when installed) reports no errors.
# shellcheck source=tests/packaging/lib.sh
source "$(dirname "$0")/lib.sh" "$@"
need dpkg-buildpackage dh dpkg-deb openssl

export DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS:-parallel=$(nproc)}
"$REPO/packaging/build-deb.sh" "$T/out" >"$T/build.log" 2>&1 || {
    tail -n 60 "$T/build.log" >&2
    fail "packaging/build-deb.sh"
}
deb=$(tail -n 1 "$T/build.log")
[[ -f $deb ]] || fail "build-deb.sh did not print the .deb path (got '$deb')"
log "built $(basename "$deb")"

dpkg-deb -x "$deb" "$T/root"
dpkg-deb -e "$deb" "$T/control"
BIN=$T/root/usr/sbin/mux443
[[ -x $BIN ]] || fail "no /usr/sbin/mux443 in the package"

version=$(sed -n 's/^project(mux443 VERSION \([0-9.]*\).*/\1/p' "$REPO/CMakeLists.txt")
[[ $("$BIN" -V) == "mux443 $version" ]] || fail "packaged binary says '$("$BIN" -V)', CMake $version"

bad=0
check_config "$BIN" "$T/root/etc/mux443/mux443.ini" || bad=$((bad + 1))
n=0
for f in "$T"/root/usr/share/doc/mux443/examples/*; do
    n=$((n + 1))
    check_config "$BIN" "$f" || bad=$((bad + 1))
done
for r in "$REPO"/etc/recipes/*.ini; do
    compgen -G "$T/root/usr/share/doc/mux443/examples/$(basename "$r")*" >/dev/null ||
        fail "$(basename "$r") is not shipped in /usr/share/doc/mux443/examples"
done
((bad == 0)) || fail "$bad shipped configuration(s) rejected by the packaged mux443 -t"
log "packaged mux443 -t: /etc/mux443/mux443.ini and $n examples"

man8=$T/root/usr/share/man/man8/mux443.8.gz
man5=$T/root/usr/share/man/man5/mux443.ini.5.gz
[[ -f $man8 ]] || fail "mux443.8 missing from the package"
[[ -f $man5 ]] || fail "mux443.ini.5 missing from the package"
cmp -s <(zcat "$man5") <("$BIN" --man-config) || fail "packaged mux443.ini.5 differs from --man-config"
cmp -s <(zcat "$man8") "$REPO/packaging/man/mux443.8" || fail "packaged mux443.8 differs from packaging/man"
log "man pages: mux443(8), mux443.ini(5) (= --man-config)"

unit=$T/root/lib/systemd/system/mux443.service
[[ -f $unit ]] || unit=$T/root/usr/lib/systemd/system/mux443.service
cmp -s "$unit" "$REPO/packaging/systemd/mux443.service" || fail "packaged unit differs or is missing"
grep -qx /etc/mux443/mux443.ini "$T/control/conffiles" || fail "/etc/mux443/mux443.ini is not a conffile"
[[ -d $T/root/etc/mux443/tls ]] || fail "/etc/mux443/tls not shipped"
grep -q 'adduser --system' "$T/control/postinst" || fail "postinst does not create the user"
grep -q 'deluser --system' "$T/control/postrm" || fail "postrm does not remove the user on purge"
grep -q "deb-systemd-helper" "$T/control/postinst" || fail "dh_installsystemd snippet missing"
for s in postinst postrm prerm; do
    [[ -f $T/control/$s ]] && { sh -n "$T/control/$s" || fail "$s does not parse"; }
done
log "unit, conffile, /etc/mux443/tls, maintainer scripts"

if command -v lintian >/dev/null; then
    changes=$(ls "$T"/out/*.changes)
    lintian --fail-on error --info "$changes" >"$T/lintian.log" 2>&1 || {
        cat "$T/lintian.log" >&2
        fail "lintian errors"
    }
    grep -v "running with root privileges" "$T/lintian.log" | sed 's/^/    /' >&2 || true
    log "lintian: no errors"
else
    log "lintian not installed: not run"
fi
