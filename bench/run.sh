#!/usr/bin/env bash
# Runs pg_connguard's benchmarks on this machine and prints a table of ratios measured
# side by side in one run: the core's hot paths (Google Benchmark), then two local
# clusters, with and without the library, under pgbench and purpose-built loads.
# Takes about 6 minutes. BENCH_SECONDS (per pgbench run), BENCH_ROUNDS and
# BENCH_WORKER_SECONDS shorten it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/common.sh"

install_missing_packages "pgbouncer"
echo "== core benchmarks (Google Benchmark)"
cmake -S "$root" -B "$root/build/bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build/bench" --target core_bench -j"$(nproc)" >/dev/null
"$root/build/bench/core_bench" --benchmark_min_time=0.5 | tee "$root/build/bench/core_bench.txt"

echo "== end-to-end benchmarks"
copy=$(build_and_install_copy "$root" bench)
pgxs_dir=$(dirname "$($PG_CONFIG --pgxs)")/../..
pgxs_perl=$pgxs_dir/src/test/perl
results="$copy/results.md"
as_server_user env PATH="$PG_BIN:$PATH" PERL5LIB="$pgxs_perl" PG_REGRESS="$pgxs_dir/src/test/regress/pg_regress" TESTDIR="$copy" BENCH_OUTPUT="$results" \
    BENCH_SECONDS="${BENCH_SECONDS:-8}" BENCH_ROUNDS="${BENCH_ROUNDS:-3}" BENCH_WORKER_SECONDS="${BENCH_WORKER_SECONDS:-60}" \
    perl "$copy/bench/bench.pl" > "$copy/bench.log" 2>&1 || { tail -40 "$copy/bench.log"; exit 1; }
echo
cat "$results"
grep -E "^(Classify|Admission|Deadlines)" "$root/build/bench/core_bench.txt" | awk '{printf "core: %s %s %s per iteration\n", $1, $2, $3}'
rm -rf "$copy"
