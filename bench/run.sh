#!/usr/bin/env bash
# Runs pg_connguard's benchmarks on this machine and prints a table of ratios measured
# side by side in one run: the core's hot paths (Google Benchmark), then two local
# clusters, with and without the library, under pgbench and purpose-built loads.
# Takes about an hour (more on a machine slow to fork); BENCH_ONLY=workload runs only the
# max_active rows of bench/workload.pl, BENCH_ONLY=login only the login cost by the method
# checked with A/A runs (bench/login.pl; BENCH_LOGIN_MODES=none,both,ab and
# BENCH_LOGIN_HELD=300,2000 choose its rows, BENCH_BLOCKS its blocks, a multiple of 4;
# BENCH_LOGIN_LIBRARY=connguard_null preloads an empty library instead, bench/null_library.c). BENCH_SECONDS (per pgbench run), BENCH_ROUNDS,
# BENCH_MANY_SESSIONS and BENCH_WORKER_SECONDS shorten it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/common.sh"

install_missing_packages "pgbouncer"
copy=$(build_and_install_copy "$root" bench)
pgxs_dir=$(dirname "$($PG_CONFIG --pgxs)")/../..
pgxs_perl=$pgxs_dir/src/test/perl
results="$copy/results.md"
run_bench() {
    as_server_user env PATH="$PG_BIN:$PATH" PERL5LIB="$pgxs_perl" PG_REGRESS="$pgxs_dir/src/test/regress/pg_regress" TESTDIR="$copy" BENCH_OUTPUT="$results" \
        BENCH_SECONDS="${BENCH_SECONDS:-$2}" BENCH_ROUNDS="${BENCH_ROUNDS:-$3}" BENCH_WORKER_SECONDS="${BENCH_WORKER_SECONDS:-60}" \
        BENCH_LOGIN_MODES="${BENCH_LOGIN_MODES:-none,both,ab}" BENCH_LOGIN_HELD="${BENCH_LOGIN_HELD:-300,2000}" BENCH_BLOCKS="${BENCH_BLOCKS:-4}" \
        BENCH_LOGIN_LIBRARY="${BENCH_LOGIN_LIBRARY:-pg_connguard}" \
        perl "$copy/bench/$1.pl" > "$copy/$1.log" 2>&1 || { tail -40 "$copy/$1.log"; exit 1; }
}
# BENCH_ONLY=workload runs the max_active rows (bench/workload.pl, about 8 minutes) alone.
# BENCH_ONLY=login the login cost by bench/login.pl (about 25 minutes with both held counts).
# BENCH_ONLY=login_queue the login queue and reservations rows (bench/login_queue.pl).
# Each script's own defaults: seconds per run and rounds (per block for login.pl).
case "${BENCH_ONLY:-}" in
    workload) echo "== max_active benchmarks"; run_bench workload 8 6 ;;
    login_queue) echo "== login queue and reservations"; run_bench login_queue 10 1 ;;
    login)
        if [ "${BENCH_LOGIN_LIBRARY:-pg_connguard}" = connguard_null ]; then  # the control: an empty library
            as_root cc -shared -fPIC -O2 -I"$($PG_CONFIG --includedir-server)" -o "$($PG_CONFIG --pkglibdir)/connguard_null.so" \
                "$root/bench/null_library.c"
        fi
        echo "== login cost, A/A and A/B (bench/login.pl)"; run_bench login 6 4 ;;
esac
if [ -n "${BENCH_ONLY:-}" ]; then
    cat "$results"
    rm -rf "$copy"
    exit 0
fi

echo "== core benchmarks (Google Benchmark)"
cmake -S "$root" -B "$root/build/bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build/bench" --target core_bench -j"$(nproc)" >/dev/null
"$root/build/bench/core_bench" --benchmark_min_time=0.5 | tee "$root/build/bench/core_bench.txt"

echo "== end-to-end benchmarks"
run_bench bench 8 6
# The core's rows (Google Benchmark, above), then the machine's page fault cost for context.
awk '/^ClassifyThousandSessions/ {printf "| 5b. core: classify 1000 sessions against 100 rules (Google Benchmark) | %.0f µs |  |  |  |  | %.2f µs a session | core_bench ClassifyThousandSessions |\n", $2 / 1000, $2 / 1e6}
     /^AdmissionDecisionWith300Sessions/ {printf "| 5c. core: one admission decision, 100 rules, 300 sessions present | %.1f µs |  |  |  |  | the decision inside the login hook of row 1 | core_bench AdmissionDecisionWith300Sessions |\n", $2 / 1000}
     /^DeadlinesForThousandSessions/ {printf "| 5d. core: deadlines of 1000 sessions | %.1f µs |  |  |  |  | the worker\x27s computation per wake-up | core_bench DeadlinesForThousandSessions |\n", $2 / 1000}' \
    "$root/build/bench/core_bench.txt" >> "$results"
cc -O2 -o "$root/build/bench/page_fault_cost" "$root/bench/page_fault_cost.c"
read -r cow fresh shared < <("$root/build/bench/page_fault_cost")
printf '\nOn this machine a first write to a page costs %s µs when the page was inherited from the parent process (copy on write) and %s µs for a fresh page, and a first read of a 64 KB stretch of shared memory costs %s µs (bench/page_fault_cost.c); every backend is a fresh fork of the postmaster and pays this for each page or stretch it touches.\n' "$cow" "$fresh" "$shared" >> "$results"
echo "== max_active benchmarks"
run_bench workload 8 6
echo "== login queue and reservations (bench/login_queue.pl)"
run_bench login_queue 10 1
echo "== login cost, A/A and A/B (bench/login.pl)"
run_bench login 6 4
echo
cat "$results"
rm -rf "$copy"
