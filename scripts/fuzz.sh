#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang++ (CMake option CONNGUARD_FUZZ, into
# build/fuzz) and runs each for a bounded time from a copy of its seed corpus in
# fuzz/corpus/<name>; the repository's corpus is never written to. One line per target,
# then "fuzz: N passed, M failed"; exits 1 when a target crashed (its input is printed in
# hex, with the path of the file libFuzzer saved it to), 2 when the build failed.
#
#   ./scripts/fuzz.sh                  every target, 30 s each
#   FUZZ_SECONDS=300 ./scripts/fuzz.sh longer runs
#   ./scripts/fuzz.sh glob rule        only these targets
#
# Environment: FUZZ_SECONDS (default 30), FUZZ_JOBS (build parallelism, default nproc),
# FUZZ_BUILD_DIR (default build/fuzz; a per-user directory under $TMPDIR when that is not
# writable, e.g. a tree owned by root run as another user).
# Needs clang++ with its compiler-rt (Debian: clang, libclang-rt-dev); no root needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-$(nproc)}
case $seconds in '' | *[!0-9]* | 0) echo "FUZZ_SECONDS must be a positive number of seconds" >&2; exit 2 ;; esac
case ${1:-} in -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

# Longest input libFuzzer may make, per target: room for what each parser can take whole
# (a 127-byte pattern and its text, an address with a zone, options words longer than the
# 128-byte prefix kept of them, several rule rows and a session).
max_len_of() {
    case $1 in
        glob) echo 512 ;;
        address) echo 256 ;;
        login_application) echo 1024 ;;
        rule) echo 1024 ;;
        *) echo 1024 ;;
    esac
}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for source in "$root"/fuzz/*_fuzz.cpp; do
        name=$(basename "$source" .cpp)
        targets+=("${name%_fuzz}")
    done
fi
for name in "${targets[@]}"; do
    if [ ! -f "$root/fuzz/${name}_fuzz.cpp" ] || [ ! -d "$root/fuzz/corpus/$name" ]; then
        echo "unknown fuzz target '$name' (needs fuzz/${name}_fuzz.cpp and fuzz/corpus/$name/)" >&2
        exit 2
    fi
done

if ! command -v clang++ >/dev/null 2>&1; then
    echo "fuzz: clang++ not found (Debian: apt-get install clang libclang-rt-dev)" >&2
    exit 2
fi

build_dir=${FUZZ_BUILD_DIR:-$root/build/fuzz}
if ! mkdir -p "$build_dir" 2>/dev/null || [ ! -w "$build_dir" ]; then
    fallback="${TMPDIR:-/tmp}/pg_connguard-fuzz-$(id -un)"
    echo "fuzz: $build_dir is not writable by $(id -un); building in $fallback" >&2
    build_dir=$fallback
    mkdir -p "$build_dir"
fi

echo "fuzz: building ${targets[*]} in $build_dir"
build_log="$build_dir/build.log"
build_targets=()
for name in "${targets[@]}"; do build_targets+=("${name}_fuzz"); done
if ! { cmake -S "$root" -B "$build_dir" -DCONNGUARD_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ &&
       cmake --build "$build_dir" -j"$jobs" --target "${build_targets[@]}"; } >"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    echo "fuzz: the build failed (log: $build_log)" >&2
    exit 2
fi

# The last figure libFuzzer gave for how many inputs it ran.
runs_of() {
    local log=$1 runs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    echo "${runs:-0}"
}

passed=0
failed=0
for name in "${targets[@]}"; do
    corpus="$build_dir/corpus-$name"
    artifacts="$build_dir/artifacts-$name"
    log="$build_dir/$name.log"
    stamp="$build_dir/.started-$name"
    rm -rf "$corpus"
    cp -R "$root/fuzz/corpus/$name" "$corpus"
    mkdir -p "$artifacts"
    touch "$stamp"
    start=$SECONDS
    status=0
    "$build_dir/${name}_fuzz" -max_total_time="$seconds" -max_len="$(max_len_of "$name")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
    elapsed=$((SECONDS - start))
    runs=$(runs_of "$log")
    crashes=$(find "$artifacts" -type f -newer "$stamp" | sort)
    if [ "$status" -eq 0 ] && [ -z "$crashes" ]; then
        echo "fuzz $name: $runs runs in $elapsed s, no crash"
        passed=$((passed + 1))
        continue
    fi
    failed=$((failed + 1))
    echo "fuzz $name: CRASH after $runs runs in $elapsed s (exit status $status; log: $log)"
    grep -E -m 5 'invariant violated|runtime error|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY' "$log" |
        sed 's/^/    /' || true
    while IFS= read -r input; do
        [ -n "$input" ] || continue
        echo "    input: $input ($(wc -c <"$input") bytes), hex:"
        od -An -tx1 -v "$input" | head -n 32 | sed 's/^ */      /'
        echo "    reproduce: $build_dir/${name}_fuzz $input"
    done <<<"$crashes"
done

echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
