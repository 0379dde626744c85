#!/bin/sh
# README command 2: installs what is missing, builds mux443 and its tests with
# AddressSanitizer + UndefinedBehaviorSanitizer (clang, so the libFuzzer targets build
# too) and runs the whole suite with ctest.
set -eu
cd "$(dirname "$0")/.."
packaging/install-deps.sh test
CC=clang cmake -S . -B build-test -DMUX443_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test
# The browser tests may skip themselves (exit 77) only where a tool is missing; here
# everything was installed above, so a skip would hide a broken setup: make it fail.
export E2E_REQUIRED=1
exec ctest --output-on-failure -j"$(nproc)"
