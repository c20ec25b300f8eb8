#!/usr/bin/env bash
# End-to-end throughput of the object engine: the seeded log file goes through the built
# librustsink.so (decode, JSON lines, gzip at the default level, journal with fdatasync, dir delivery),
# driven by `rustsink run` as Fluent Bit would drive it, on one core and on two, with one
# flush at a time and with two (Fluent Bit's `Workers`).
#
# CPU is counted twice: for the whole process, and for the plugin alone (the process less
# the input thread, which reads and packs the lines as Fluent Bit's input does in
# production). The plugin's CPU-seconds per GB against those of gzip alone give its share
# of the ceiling.
#
# usage: bash benches/engine.sh [MEGABYTES]     (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
megabytes="${1:-256}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
python3 benches/generate_logs.py "$megabytes" 1 > "$work/app.log"
bytes=$(stat -c %s "$work/app.log")
lines=$(wc -l < "$work/app.log")

cat > "$work/bench.conf" <<CONF
[OUTPUT]
    Name       rustsink
    Match      *
    sink       dir
    path       $work/out
    store_dir  $work/store
CONF

# The ceiling first, one core: gzip at the default level (libdeflate) over the raw log, in memory.
cargo build --release --quiet --example gzip_ceiling
ceiling=$(taskset -c 0 target/release/examples/gzip_ceiling "$work/app.log" | awk '{print $(NF-1)}')

# Best of three runs (the shortest wall time): this machine's speed varies from run to run.
measure() {
    local label="$1" cpus="$2" workers="$3" best="" wall user sys rss_kib input_cpu
    for _ in 1 2 3; do
        rm -rf "$work/out" "$work/store"
        /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
            taskset -c "$cpus" target/release/rustsink run --config "$work/bench.conf" \
            --input "$work/app.log" --chunk-records 2000 --workers "$workers" 2> "$work/log"
        read -r wall user sys rss_kib < "$work/time"
        if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN {exit !(a < b)}'; then
            best="$wall"; cp "$work/time" "$work/best"
            grep -o "used [0-9.]* s of CPU" "$work/log" | awk '{print $2}' > "$work/best_input"
        fi
    done
    read -r wall user sys rss_kib < "$work/best"
    read -r input_cpu < "$work/best_input"
    local stored
    stored=$(find "$work/out" -type f -name '*.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
    awk -v label="$label" -v wall="$wall" -v user="$user" -v sys="$sys" -v rss="$rss_kib" \
        -v bytes="$bytes" -v lines="$lines" -v stored="$stored" -v input_cpu="$input_cpu" \
        -v ceiling="$ceiling" 'BEGIN {
        mb = bytes / 1048576; gb = bytes / 1073741824; cpu = user + sys
        plugin = (cpu - input_cpu) / gb
        printf "| %s | %.1f | %.0f | %.1f | %.1f | %.0f%% | %.2f | %.0f | %.1f |\n",
            label, mb / wall, lines / wall, cpu / gb, plugin, 100 * (1024 / ceiling) / plugin,
            wall, rss / 1024, bytes / stored
    }'
}

echo "input: $megabytes MiB, $lines lines, seed 1"
echo "ceiling: gzip at the default level (libdeflate), one core, over the raw log: $ceiling MB/s, $(awk -v c="$ceiling" 'BEGIN {printf "%.1f", 1024 / c}') CPU-s per GB"
echo "| cores, flush workers | MB/s of raw log | records/s | CPU-s per GB, process | CPU-s per GB, plugin | plugin's share of the ceiling | wall s | peak RSS MiB | gzip ratio |"
echo "|---|---|---|---|---|---|---|---|---|"
measure "1 core, 1 worker" 0 1
measure "1 core, 2 workers" 0 2
measure "2 cores, 1 worker" 0,1 1
measure "2 cores, 2 workers" 0,1 2

# The ceiling over the JSON lines the plugin wrote (bigger: escaped quotes and the date
# field), counted in raw bytes.
find "$work/out" -type f -name '*.gz' -print0 | sort -z | xargs -0 zcat > "$work/lines.jsonl"
echo "JSON lines: $(stat -c %s "$work/lines.jsonl") bytes for $bytes bytes of raw log"
cd "$work"
taskset -c 0 "$OLDPWD/target/release/examples/gzip_ceiling" lines.jsonl "$bytes"
echo "ceiling again, at the end: $(taskset -c 0 "$OLDPWD/target/release/examples/gzip_ceiling" app.log | awk '{print $(NF-1)}') MB/s"
