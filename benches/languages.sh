#!/usr/bin/env bash
# The same filter in Rust, Python and JavaScript, side by side in one run: `grep`
# (plugins/grep) and its twins (plugins/python/grep, plugins/javascript/grep) keep the records whose `log` matches `error`, over
# the seeded `varied` log, through `rustsink run` with `sink dir` and no compression.
#
# Each component is compiled into store_dir first (`rustsink check --precompile`), so the
# runs measure filtering, not compiling; the first compile is timed on its own. CPU per
# record is the run's CPU less that of the same run without a filter.
#
# componentize-py comes from PyPI, componentize-js from npm (`bash .ci/setup` installs both).
#
# usage: bash benches/languages.sh [MEGABYTES]     (default 64)
set -euo pipefail
cd "$(dirname "$0")/.."
# pip put componentize-py in Python's scripts folder, which need not be on PATH.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
megabytes="${1:-64}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet
cargo build --quiet --locked --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml \
  --target-dir target/components -p grep
rust="$PWD/target/components/wasm32-wasip2/release/grep.wasm"
MSGPACK_PUREPYTHON=1 python3 -m pip install --quiet --disable-pip-version-check \
  --no-binary msgpack --target "$work/site" msgpack==1.1.2
python="$work/grep-python.wasm"
(cd plugins/python/grep && componentize-py -d ../../../wit -w filter componentize app \
  -o "$python" -p . -p "$work/site" > /dev/null)

javascript="$work/grep-javascript.wasm"
(cd plugins/javascript/grep && node build.mjs "$javascript" ../../../wit)

python3 benches/generate_logs.py "$megabytes" 1 varied > "$work/app.log"
lines=$(wc -l < "$work/app.log")

conf() {
    local name="$1" filter="$2"
    printf '[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path %s\n    store_dir %s\n    compression none\n' \
        "$work/out-$name" "$work/store-$name"
    [ -z "$filter" ] || printf '    filter.1 %s\n    filter.1.key log\n    filter.1.regex error\n    filter.1.timeout 60s\n' "$filter"
}

# CPU-seconds of the best of two runs.
cpu_of() {
    local name="$1" best=""
    for _ in 1 2; do
        rm -rf "$work/out-$name" "$work/store-$name/rustsink.0"
        /usr/bin/time -f "%U %S %M" -o "$work/time" env RUSTSINK_PLUGIN="$PWD/target/release/librustsink.so" \
            target/release/rustsink run --config "$work/$name.conf" --input "$work/app.log" \
            --chunk-records 2000 2> /dev/null
        read -r user sys rss < "$work/time"
        local cpu
        cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')
        if [ -z "$best" ] || awk -v a="$cpu" -v b="$best" 'BEGIN {exit !(a < b)}'; then
            best="$cpu"; echo "$rss" > "$work/rss-$name"
        fi
    done
    echo "$best"
}

echo "input: $megabytes MiB, $lines lines, seed 1, varied"
echo "| filter | component size | first compile s | CPU µs per record | peak RSS MiB |"
echo "|---|---|---|---|---|"
conf none "" > "$work/none.conf"
none=$(cpu_of none)
for name in rust python javascript; do
    case "$name" in
        rust) wasm="$rust" ;;
        python) wasm="$python" ;;
        javascript) wasm="$javascript" ;;
    esac
    conf "$name" "$wasm" > "$work/$name.conf"
    /usr/bin/time -f "%e" -o "$work/compile" target/release/rustsink check --precompile \
        --config "$work/$name.conf" > /dev/null 2>&1
    cpu=$(cpu_of "$name")
    awk -v name="$name" -v size="$(stat -c %s "$wasm")" -v compile="$(cat "$work/compile")" \
        -v cpu="$cpu" -v none="$none" -v lines="$lines" -v rss="$(cat "$work/rss-$name")" 'BEGIN {
        printf "| grep, %s | %.1f MB | %.1f | %.1f | %.0f |\n", name, size / 1e6, compile,
            (cpu - none) / lines * 1e6, rss / 1024
    }'
done
