#!/usr/bin/env bash
# Installs what is missing, then runs every test layer of pg_connguard:
#   1. the core's GoogleTest suite (CMake + CTest), no server needed;
#   2. pg_regress tests of the SQL surface, on a temporary instance;
#   3. TAP tests (several sessions, timing, restarts), on temporary instances.
# Works as root (server-side tests then run as the postgres user) or as a user with sudo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/common.sh"

install_missing_packages "$TEST_PACKAGES"

echo "== core unit tests (GoogleTest)"
cmake -S "$root" -B "$root/build/core" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build/core" -j"$(nproc)" >/dev/null
(cd "$root/build/core" && ctest --output-on-failure)

echo "== extension build and install"
copy=$(build_and_install_copy "$root" test)

echo "== pg_regress and TAP tests (as $SERVER_USER, in $copy)"
if ! as_server_user make -s -C "$copy" PG_CONFIG="$PG_CONFIG" installcheck; then
    [ -f "$copy/regression.diffs" ] && cat "$copy/regression.diffs"
    for log in "$copy"/tmp_check/log/*; do
        [ -f "$log" ] && { echo "---- $log"; tail -n 60 "$log"; }
    done
    echo "FAILED: see above (the build copy is kept in $copy)"
    exit 1
fi
rm -rf "$copy"
echo "== all test layers passed"
