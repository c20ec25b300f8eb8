#!/usr/bin/env bash
# Upload throughput of `sink s3` to a local S3-compatible server (moto in server mode, on
# this machine), with one upload at a time and with the default four, beside writing the
# same objects with `sink dir`, in one run. The input is the seeded log file, driven
# through the built librustsink.so by `rustsink run`; each run ends when every object is
# delivered. CPU-seconds are rustsink's own (moto's are not counted, but it shares the
# machine's cores).
#
# usage: bash benches/s3.sh [MEGABYTES]     (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
megabytes="${1:-256}"
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" > "$work/moto.log" 2>&1 &
moto=$!
trap 'kill $moto; rm -rf "$work"' EXIT
endpoint="http://127.0.0.1:$port"

cargo build --release --quiet
python3 benches/generate_logs.py "$megabytes" 1 > "$work/app.log"
bytes=$(stat -c %s "$work/app.log")
until python3 -c "import urllib.request; urllib.request.urlopen('$endpoint/moto-api/')" 2>/dev/null; do
    sleep 0.2
done

# Objects of 2 MiB (gzip makes about 20 MiB of log into one): a dozen or more per run, so
# that several can be on their way at once.
conf() {
    local name="$1" sink_keys="$2"
    cat > "$work/$name.conf" <<CONF
[OUTPUT]
    Name              rustsink
    Match             *
$sink_keys
    total_file_size   2M
    store_dir         $work/store
    shutdown_timeout  600s
    s3_key_format     $name/\$TAG/\$INDEX.jsonl.gz
CONF
}
s3_keys="    bucket bench
    endpoint $endpoint
    region us-east-1"
conf dir "    sink dir
    path $work/out"
conf s3-1 "$s3_keys
    upload_concurrency 1"
conf s3-4 "$s3_keys"

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
echo '[{"service": "s3", "call": "create_bucket", "args": {"Bucket": "bench"}}]' |
    python3 tests/moto/aws_calls.py "$endpoint" > /dev/null

measure() {
    local label="$1" name="$2" wall user sys rss_kib
    rm -rf "$work/out" "$work/store"
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
        target/release/rustsink run --config "$work/$name.conf" --input "$work/app.log" \
        --chunk-records 2000 2> "$work/log"
    if grep -q '\[ warn\]\|\[error\]' "$work/log"; then cat "$work/log" >&2; exit 1; fi
    read -r wall user sys rss_kib < "$work/time"
    awk -v label="$label" -v wall="$wall" -v user="$user" -v sys="$sys" -v rss="$rss_kib" \
        -v bytes="$bytes" 'BEGIN {
        mb = bytes / 1048576; cpu = user + sys
        printf "| %s | %.1f | %.1f | %.1f | %.0f |\n",
            label, mb / wall, cpu / (bytes / 1073741824), wall, rss / 1024
    }'
}

echo "input: $megabytes MiB of seeded logs; objects of 2 MiB"
echo "| destination | MB/s of raw log | CPU-s per GB (rustsink) | wall s | peak RSS MiB |"
echo "|---|---|---|---|---|"
measure "dir" dir
dir_objects=$(find "$work/out" -type f | wc -l)
measure "s3 (moto), upload_concurrency 1" s3-1
measure "s3 (moto), upload_concurrency 4 (default)" s3-4
objects=$(python3 -c "
import boto3
s3 = boto3.client('s3', endpoint_url='$endpoint', region_name='us-east-1')
pages = s3.get_paginator('list_objects_v2').paginate(Bucket='bench')
print(sum(len(p.get('Contents', [])) for p in pages))")
echo "objects in the bucket after both S3 runs: $objects; in the directory: $dir_objects"
