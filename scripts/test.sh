#!/usr/bin/env bash
# Installs what is missing, then runs every test layer of pg_connguard against every supported
# PostgreSQL major (see scripts/majors.sh for where each comes from):
#   1. the core's GoogleTest suite (CMake + CTest), built with that major's compiler; on the
#      assertion-enabled target, under AddressSanitizer and UndefinedBehaviorSanitizer;
#   2. pg_regress tests of the SQL surface, on a temporary instance;
#   3. TAP tests (several sessions, timing, restarts, crashes), on temporary instances;
#   4. (not 18-assert) its Debian package, built, lintian-checked and installed into a clean
#      Debian file system with only the server (scripts/packages.sh, scripts/package_check.sh);
# and, once: the libFuzzer targets of fuzz/ (scripts/fuzz.sh, $FUZZ_SECONDS each, default 15),
# the PGXN archive (make dist), the alerting rules (promtool test rules), pg_upgrade 18 -> 19
# with rules (when 18 and 19 ran), and the real clients and their pools against PostgreSQL 15
# (test/clients/run.sh, when 15 ran).
# Ends with one table: target, exact server version, build warnings, the counts of each layer.
#
#   ./scripts/test.sh                   every target: 15 17 18 19 18-assert, and the fuzzers
#   ./scripts/test.sh --major 17        one target (repeat --major for more), no fuzzing
#   ./scripts/test.sh --fuzz            the fuzzers too (with --major)
#   ./scripts/test.sh --rebuild         make the cached root file systems and server anew
#
# Works as root (server-side tests then run as the postgres user) or as a user with sudo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/common.sh"
. "$root/scripts/majors.sh"
. "$root/scripts/packages.sh"

targets=()
fuzz=""
export REBUILD_CACHE=0 CONNGUARD_RUN_ID="$$-$(date +%s)"
while [ $# -gt 0 ]; do
    case $1 in
        --major)
            [ $# -ge 2 ] || { echo "--major needs a target: $ALL_TARGETS" >&2; exit 2; }
            case " $ALL_TARGETS " in *" $2 "*) targets+=("$2") ;; *) echo "unknown target '$2'; choose from: $ALL_TARGETS" >&2; exit 2 ;; esac
            shift 2 ;;
        --rebuild) REBUILD_CACHE=1; shift ;;
        --fuzz) fuzz=1; shift ;;
        -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    read -r -a targets <<<"$ALL_TARGETS"
    fuzz=${fuzz:-1}
fi

install_missing_packages "$TEST_PACKAGES $MAJORS_HOST_PACKAGES $PACKAGE_BUILD_PACKAGES python3"
logs="$root/build/test-logs"
mkdir -p "$logs"
trap "unmount_all_rootfs; unmount_all_scratch" EXIT

# Where the target runs: "" for this machine, else the root file system it runs in. The
# source copy is at $copy inside the target, and at $rootfs$copy from here.
rootfs=""
as_target_root() { if [ -z "$rootfs" ]; then as_root "$@"; else in_rootfs "$rootfs" "$@"; fi; }
as_target_user() {
    if [ -z "$rootfs" ]; then as_server_user "$@"; else in_rootfs "$rootfs" runuser -u postgres -- "$@"; fi
}
target_user_name() { if [ -z "$rootfs" ]; then echo "$SERVER_USER"; else echo postgres; fi; }

# One target, all layers; writes its figures to $logs/$target.result as shell assignments.
run_target() {
    local target=$1 pg_config unit_flags="" copy log status
    log="$logs/$target.log"
    : >"$log"
    case $target in
        15) rootfs=""; pg_config=/usr/lib/postgresql/15/bin/pg_config ;;
        18-assert)
            rootfs=""
            prepare_assert_server || return 1
            pg_config="$ASSERT_PREFIX/bin/pg_config"
            unit_flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" ;;
        *)
            rootfs=$(rootfs_dir "$(suite_of_target "$target")")
            prepare_rootfs "$(suite_of_target "$target")" "$target" || return 1
            pg_config="/usr/lib/postgresql/$target/bin/pg_config" ;;
    esac
    local bindir server_version
    bindir=$(as_target_root "$pg_config" --bindir) || return 1
    server_version=$(as_target_root "$bindir/postgres" --version | sed "s/^postgres (PostgreSQL) //") || return 1
    record version "$server_version"

    copy="/var/tmp/pg_connguard-test-$target"
    as_root rm -rf "$rootfs$copy" && as_root mkdir -p "$rootfs$copy" || return 1
    tar -C "$root" --exclude=./build --exclude=./tmp_check --exclude=./results --exclude=./.git \
        --exclude='*.o' --exclude='*.so' -cf - . | as_root tar -C "$rootfs$copy" -xf - || return 1
    as_target_root chown -R "$(target_user_name)" "$copy" || return 1

    echo "-- $target: core unit tests (GoogleTest${unit_flags:+, ASan+UBSan})"
    status=0
    as_target_user env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh -c "
        cmake -S '$copy' -B '$copy/build/core' -DCMAKE_BUILD_TYPE=RelWithDebInfo \
              -DCMAKE_CXX_FLAGS='$unit_flags' -DCMAKE_EXE_LINKER_FLAGS='$unit_flags' >/dev/null &&
        cmake --build '$copy/build/core' -j$(nproc) --target core_tests >/dev/null &&
        cd '$copy/build/core' && ctest --output-on-failure" >"$logs/$target.unit.log" 2>&1 || status=$?
    grep -E 'tests passed|tests failed' "$logs/$target.unit.log" | tail -n 1
    record unit "$(ctest_count "$logs/$target.unit.log" "$status")"
    [ "$status" -eq 0 ] || { tail -n 80 "$logs/$target.unit.log"; return 1; }

    echo "-- $target: build and install the extension ($server_version)"
    status=0
    as_target_user make -C "$copy" PG_CONFIG="$pg_config" -j"$(nproc)" >"$logs/$target.build.log" 2>&1 || status=$?
    record warnings "$(grep -c 'warning:' "$logs/$target.build.log" || true)"
    [ "$status" -eq 0 ] || { grep -E 'error|warning' "$logs/$target.build.log" | head -n 40; return 1; }
    as_target_root make -s -C "$copy" PG_CONFIG="$pg_config" install >>"$logs/$target.build.log" 2>&1 || return 1

    echo "-- $target: pg_regress and TAP tests (as $(target_user_name))"
    status=0
    as_target_user make -C "$copy" PG_CONFIG="$pg_config" installcheck 2>&1 | tee "$log" || status=$?
    record regress "$(regress_count "$log")"
    record tap "$(tap_count "$log")"
    local crashes
    crashes=$(server_crashes "$rootfs$copy")
    if [ -n "$crashes" ]; then
        echo "the server crashed or failed an assertion during the tests:"
        echo "$crashes"
        record crash yes
        status=1
    fi
    if [ "$status" -ne 0 ]; then
        [ -f "$rootfs$copy/regression.diffs" ] && cat "$rootfs$copy/regression.diffs"
        show_failed_tap_logs "$log" "$rootfs$copy/tmp_check/log"
        echo "FAILED: see above (the build copy is kept in $rootfs$copy)"
        return 1
    fi
    as_root rm -rf "$rootfs$copy"

    [ "$target" = 18-assert ] && return 0
    echo "-- $target: Debian package: build, lintian, install into a clean Debian file system and check"
    local lintian
    : >"$logs/$target.package.log"
    if ! lintian=$(build_package "$target" "$logs/$target.package.log"); then
        record package "FAIL: build or lintian${lintian:+ ($lintian)}"
        tail -n 40 "$logs/$target.package.log"
        return 1
    fi
    if ! check_package "$target" "$logs/$target.package.log"; then
        record package "FAIL: clean-system check"
        tail -n 40 "$logs/$target.package.log"
        return 1
    fi
    grep -E '^### |too many connections|package check passed' "$logs/$target.package.log" | tail -n 12
    record package "PASS (lintian: $lintian)"
}

record() { echo "$1=$(printf '%q' "$2")" >>"$logs/$current.result"; }

# ctest closes with "N% tests passed, F tests failed out of T".
ctest_count() {
    local failed total
    read -r failed total < <(sed -nE 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1 \2/p' "$1" | tail -n 1) || true
    if [ -n "${total:-}" ]; then echo "$((total - failed))/$total"; else echo "not run"; fi
}

# pg_regress says "All N tests passed." or "M of N tests failed." (with a "# " before it from 16 on).
regress_count() {
    local failed total
    read -r failed total < <(sed -nE 's/.*All ([0-9]+) tests passed.*/0 \1/p; s/.* ([0-9]+) of ([0-9]+) tests failed.*/\1 \2/p' "$1" | tail -n 1) || true
    if [ -n "${total:-}" ]; then echo "$((total - failed))/$total"; else echo "not run"; fi
}

# prove closes with "Files=F, Tests=N, ..." and "Result: PASS" or "Result: FAIL".
tap_count() {
    local files tests result
    read -r files tests < <(sed -nE 's/.*Files=([0-9]+), Tests=([0-9]+).*/\1 \2/p' "$1" | tail -n 1) || true
    result=$(sed -nE 's/^Result: ([A-Z]+).*/\1/p' "$1" | tail -n 1)
    if [ -n "${tests:-}" ]; then echo "$tests in $files files${result:+, $result}"; else echo "not run"; fi
}

# A failed assertion (TRAP), a PANIC, or a server process ended by a signal other than the
# SIGKILL a test sends on purpose, in any server log of the run.
# The test's own log and its servers' logs for each TAP file that failed (all of them when the
# summary names none), so the end of a long run shows the failure, not the first test's log.
show_failed_tap_logs() {
    local tap_output=$1 log_dir=$2 failed name file
    [ -d "$log_dir" ] || return 0
    failed=$(grep -oE 't/[0-9A-Za-z_]+\.pl +\(Wstat' "$tap_output" | sed -E 's|.*t/([0-9A-Za-z_]+)\.pl.*|\1|' | sort -u)
    [ -n "$failed" ] || failed=$(cd "$log_dir" && ls regress_log_* 2>/dev/null | sed 's/^regress_log_//')
    for name in $failed; do
        for file in "$log_dir/regress_log_$name" "$log_dir/$name"_*.log; do
            [ -f "$file" ] && { echo "---- $file"; tail -n 60 "$file"; }
        done
    done
}

server_crashes() {
    [ -d "$1/tmp_check/log" ] || return 0
    grep -HE 'TRAP: |PANIC: |terminated by signal ([0-8]|1[0-9]|[2-9][0-9])\b' "$1"/tmp_check/log/*.log 2>/dev/null | head -n 20 || true
}

started_all=$(date +%s)
failed=0
passed=0
fuzz_result="not run (see --fuzz)"
if [ -n "$fuzz" ]; then
    echo "== fuzzing the core's parsers (libFuzzer, ASan+UBSan)"
    if FUZZ_SECONDS="${FUZZ_SECONDS:-15}" "$root/scripts/fuzz.sh" 2>&1 | tee "$logs/fuzz.log"; then
        fuzz_result="$(grep -E '^fuzz: [0-9]+ passed' "$logs/fuzz.log" | tail -n 1)"
        passed=$((passed + 1))
    else
        fuzz_result="FAIL ($(grep -E '^fuzz: [0-9]+ passed' "$logs/fuzz.log" | tail -n 1))"
        failed=$((failed + 1))
    fi
fi
echo "== PGXN: META.json and the make dist archive"
pgxn_result=FAIL
if archive=$(make -s -C "$root" dist PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config DIST_DIR="$logs" | tail -n 1) &&
   python3 "$root/test/packaging/pgxn_check.py" "$root" "$archive" | tee "$logs/pgxn.log"; then
    pgxn_result=PASS
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
echo "== alerts: promtool check rules and test rules (monitoring/alerts.yaml)"
alerts_result=FAIL
if (cd "$root/monitoring" && promtool check rules alerts.yaml && promtool test rules alerts_test.yaml) 2>&1 | tee "$logs/alerts.log"; then
    alerts_result=PASS
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
for current in "${targets[@]}"; do
    rm -f "$logs/$current.result"
    echo "== target $current"
    started=$(date +%s)
    if (run_target "$current"); then
        record result PASS
        passed=$((passed + 1))
    else
        record result FAIL
        failed=$((failed + 1))
    fi
    record seconds "$(($(date +%s) - started))"
done

# Rules survive pg_upgrade 18 -> 19, in the sid root file system where both are installed (by
# the two targets' runs, which must both have passed).
upgrade_result="not run (needs targets 18 and 19)"
if [[ " ${targets[*]} " == *" 18 "* && " ${targets[*]} " == *" 19 "* ]] &&
   grep -qs '^result=PASS' "$logs/18.result" && grep -qs '^result=PASS' "$logs/19.result"; then
    echo "== pg_upgrade 18 -> 19 with rules (sid root file system)"
    sid=$(rootfs_dir sid)
    mount_rootfs "$sid"
    as_root install -m 755 "$root/test/upgrade/pg_upgrade_test.sh" "$sid/var/tmp/pg_upgrade_test.sh"
    if in_rootfs "$sid" runuser -u postgres -- sh /var/tmp/pg_upgrade_test.sh 18 19 2>&1 | tee "$logs/pg_upgrade.log" &&
       grep -q '^pg_upgrade check passed' "$logs/pg_upgrade.log"; then
        upgrade_result=PASS
        passed=$((passed + 1))
    else
        upgrade_result=FAIL
        failed=$((failed + 1))
    fi
fi

# Real clients (SQLAlchemy, psycopg_pool, Django, psycopg2, node-postgres, pgjdbc + HikariCP)
# through idle reaping, a leaked transaction and a cap, on this machine's PostgreSQL 15.
clients_result="not run (needs target 15)"
if [[ " ${targets[*]} " == *" 15 "* ]] && grep -qs '^result=PASS' "$logs/15.result"; then
    echo "== real clients and their pools (test/clients/run.sh)"
    if "$root/test/clients/run.sh" 2>&1 | tee "$logs/clients-run.log"; then
        clients_result="PASS ($(grep -E '^clients: ' "$logs/clients-run.log" | tail -n 1 | sed 's/^clients: //'))"
        passed=$((passed + 1))
    else
        clients_result="FAIL ($(grep -E '^clients: ' "$logs/clients-run.log" | tail -n 1 | sed 's/^clients: //'))"
        failed=$((failed + 1))
    fi
fi

echo
echo "== summary ($(($(date +%s) - started_all)) s)"
printf '%-10s %-36s %-8s %-9s %-10s %-24s %-6s %-7s %s\n' target server warnings unit pg_regress TAP time result package
for current in "${targets[@]}"; do
    version="" warnings="" unit="" regress="" tap="" seconds="" result="" package=""
    . "$logs/$current.result"
    printf '%-10s %-36s %-8s %-9s %-10s %-24s %-6s %-7s %s\n' "$current" "${version:--}" "${warnings:--}" "${unit:--}" \
        "${regress:--}" "${tap:--}" "${seconds}s" "$result" "${package:--}"
done
echo "fuzzers: ${fuzz_result#fuzz: }"
echo "pg_upgrade 18 -> 19: $upgrade_result"
echo "PGXN META.json and archive: $pgxn_result"
echo "alerts (promtool test rules): $alerts_result"
echo "real clients: $clients_result"
# The closing count: each major's target, the fuzzers, PGXN, pg_upgrade and the clients when they ran.
echo "targets: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
