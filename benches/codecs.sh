#!/usr/bin/env bash
# The codecs side by side, in one run: the same seeded log (`varied`, realistic messages)
# goes through the built librustsink.so with `sink dir`, driven by `rustsink run` with two
# flush workers on both cores, once per codec and level.
#
# For each: CPU-seconds per GB of raw log (the plugin alone: the process less the input
# thread that plays Fluent Bit's input), peak RSS of the process, the ratio of the JSON
# lines to the stored bytes, and stored bytes per record. Best of three runs by wall time.
# Parquet objects are measured against the JSON lines of the `none` row (the same records),
# and their CPU includes writing the Parquet files. Last, the peak RSS of the process with
# no input: the floor of every peak RSS.
#
# usage: bash benches/codecs.sh [MEGABYTES]     (default 512)
#        ONLY=Parquet bash benches/codecs.sh     (the rows whose label has that text, and `none`)
set -euo pipefail
cd "$(dirname "$0")/.."
megabytes="${1:-512}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
python3 benches/generate_logs.py "$megabytes" 1 varied > "$work/app.log"
bytes=$(stat -c %s "$work/app.log")
lines=$(wc -l < "$work/app.log")

measure() {
    local label="$1" keys="$2" best="" wall user sys rss_kib input_cpu
    if [ -n "${ONLY:-}" ] && [ "$label" != none ] && [[ "$label" != *"$ONLY"* ]]; then
        return
    fi
    printf '[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path %s\n    store_dir %s\n%b' \
        "$work/out" "$work/store" "$keys" > "$work/bench.conf"
    for _ in 1 2 3; do
        rm -rf "$work/out" "$work/store"
        /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
            target/release/rustsink run --config "$work/bench.conf" \
            --input "$work/app.log" --chunk-records 2000 --workers 2 2> "$work/log"
        read -r wall user sys rss_kib < "$work/time"
        if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN {exit !(a < b)}'; then
            best="$wall"; cp "$work/time" "$work/best"
            grep -o "used [0-9.]* s of CPU" "$work/log" | awk '{print $2}' > "$work/best_input"
        fi
    done
    read -r wall user sys rss_kib < "$work/best"
    read -r input_cpu < "$work/best_input"
    local stored json
    stored=$(find "$work/out" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    # The JSON lines, decoded by the codecs' own command-line tools.
    json=$(find "$work/out" -type f -print0 | sort -z | while IFS= read -r -d '' object; do
        case "$object" in
            *.gz) gzip -dc "$object" ;;
            *.zst) zstd -dcq "$object" ;;
            *.parquet) ;;
            *) cat "$object" ;;
        esac
    done | wc -c)
    # The JSON lines of the `none` row stand for Parquet objects' records.
    if [ "$json" -eq 0 ]; then json="${json_lines:-0}"; else json_lines="$json"; fi
    awk -v label="$label" -v wall="$wall" -v user="$user" -v sys="$sys" -v rss="$rss_kib" \
        -v bytes="$bytes" -v lines="$lines" -v stored="$stored" -v json="$json" \
        -v input_cpu="$input_cpu" 'BEGIN {
        gb = bytes / 1073741824
        printf "| %s | %.1f | %.1f | %.0f | %.2f | %.1f |\n",
            label, (user + sys - input_cpu) / gb, bytes / 1048576 / wall, rss / 1024,
            json / stored, stored / lines
    }'
}

echo "input: $megabytes MiB, $lines lines, seed 1, varied; 2 cores, 2 flush workers"
echo "| codec | CPU-s per GB, plugin | MB/s | peak RSS MiB | ratio | stored bytes per record |"
echo "|---|---|---|---|---|---|"
measure "none" "    compression none\n"
measure "gzip 4 (default)" ""
measure "gzip 6" "    compression_level 6\n"
measure "zstd 1 (default)" "    compression zstd\n"
measure "zstd 2" "    compression zstd\n    compression_level 2\n"
measure "zstd 3" "    compression zstd\n    compression_level 3\n"
measure "zstd 6" "    compression zstd\n    compression_level 6\n"
measure "Parquet, zstd pages (default)" "    format parquet\n"
measure "Parquet, zstd pages, 24M objects (about 100 MB of input)" "    format parquet\n    total_file_size 24M\n"
measure "Parquet, snappy pages" "    format parquet\n    compression snappy\n"
measure "Parquet, 16M row groups" "    format parquet\n    parquet.row_group_size 16M\n"
measure "Parquet, 32M row groups" "    format parquet\n    parquet.row_group_size 32M\n"
# The floor of every peak RSS: the same process with nothing to read.
: > "$work/empty.log"
/usr/bin/time -f "%M" -o "$work/time" target/release/rustsink run --config "$work/bench.conf" \
    --input "$work/empty.log" --workers 2 2> /dev/null
echo "idle (no input): peak RSS $(( $(cat "$work/time") / 1024 )) MiB"
