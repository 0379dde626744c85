#!/bin/sh
# Builds the mux443 .deb: copies the source tree into a temporary directory with
# packaging/debian as its debian/ and runs `dpkg-buildpackage -us -uc -b` there.
#
#   packaging/build-deb.sh [OUTDIR]     (default: ${TMPDIR:-/tmp}/mux443-deb)
#
# The .deb, .buildinfo and .changes land in OUTDIR; the last line printed is the
# path of the .deb. Needs dpkg-dev, debhelper, fakeroot (or root) and the
# Build-Depends of packaging/debian/control (packaging/install-deps.sh build).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
out=${1:-${TMPDIR:-/tmp}/mux443-deb}

for tool in dpkg-buildpackage dh; do
    command -v "$tool" >/dev/null || {
        echo "build-deb: $tool not found (apt-get install dpkg-dev debhelper)" >&2
        exit 1
    }
done

# The package version must be the one CMake stamps into the binary.
cmake_version=$(sed -n 's/^project(mux443 VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
deb_version=$(dpkg-parsechangelog -l "$here/debian/changelog" -S Version)
if [ "${deb_version%%-*}" != "$cmake_version" ]; then
    echo "build-deb: debian/changelog says $deb_version, CMakeLists.txt $cmake_version" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mux443-debsrc.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src=$work/mux443-$cmake_version
mkdir -p "$src"

# The source tree without build directories, VCS data or test dependencies.
readme=""
[ -f "$top/README.md" ] && readme=README.md
# shellcheck disable=SC2086 # $readme: nothing or one word
(cd "$top" && tar -cf "$work/src.tar" --exclude=.git \
    --exclude=node_modules --exclude=__pycache__ --exclude=packaging/debian \
    CMakeLists.txt COPYING src include etc packaging $readme)
tar -xf "$work/src.tar" -C "$src"
rm "$work/src.tar"
cp -a "$here/debian" "$src/debian"
[ -f "$src/README.md" ] && echo README.md >"$src/debian/mux443.docs"

(cd "$src" && dpkg-buildpackage -us -uc -b)

mkdir -p "$out"
for f in "$work"/mux443*_"$deb_version"_*; do
    cp "$f" "$out/"
done
deb=$(ls "$out"/mux443_"$deb_version"_*.deb)
echo "$deb"
