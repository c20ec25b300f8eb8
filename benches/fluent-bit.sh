#!/usr/bin/env bash
# rustsink inside real Fluent Bit, side by side with Fluent Bit's own outputs, in one run:
# the same `tail` input (a JSON parser, 512k buffers, so that the input is not the limit)
# feeds, one pipeline at a time,
#
#   null                 the input alone: the floor
#   s3                   Fluent Bit's out_s3, gzip
#   rustsink-s3          rustsink `sink s3`, the defaults
#   rustsink-dir         rustsink `sink dir`
#   rustsink-redact      `sink dir` with the redact component
#   rustsink-noop        `sink dir` with a component that returns each batch as it came
#
# A pipeline name may add keys to its output: `rustsink-s3+compression_level=3+Workers=2`.
#
# Each run ends when tail reaches the end of the file (Exit_On_Eof) and Fluent Bit has
# flushed and exited; /usr/bin/time gives wall time, CPU (user + system) and peak RSS of the
# whole Fluent Bit process. input_s is how long tail took to reach the end of the file (the
# time of Fluent Bit's warning that it will shut down): the rate the input kept while the
# output ran, before the last flush interval's chunks are written and Fluent Bit's
# once-a-second shutdown checks (Fluent Bit 1.9 logs that time to the second only). Every
# object is read back: records are counted (none lost, none twice) and the ratio is its
# JSON bytes over its stored bytes (gzip, or zstd through the zstd command). For rustsink,
# how long each flush held Fluent Bit's thread comes from its `flush_seconds` histogram,
# scraped from `metrics_listen` every 0.25 s while it runs: p50 and p99 as Prometheus'
# histogram_quantile estimates them from the buckets.
# server_CPU-s/GB is the CPU s3s-fs took during the run (it hashes every byte it stores),
# per GB of the input: work on the same cores that a remote S3 would do elsewhere. The run
# ends with each pipeline beside tail -> null of the same round: the share of null's
# throughput it kept (wall and input_s) and the CPU it added.
#
# Fluent Bit is not built here. FLUENT_BIT names a binary built from Fluent Bit's sources
# with -DCMAKE_BUILD_TYPE=Release -DFLB_DEBUG=Off (FLB_DEBUG defaults to on). S3 is
# s3s-fs on loopback: `cargo install --locked s3s-fs@0.14.1 --features binary`; S3S_FS
# names it when it is not on PATH.
#
# BEFORE names another build of librustsink.so (an earlier commit's, say): a pipeline
# written `before:rustsink-s3` runs with it, beside the same pipeline with this tree's.
#
# FLUSH sets the service's Flush (seconds, default 1) for every pipeline alike.
# DESTINATION_DIR is where s3s-fs keeps the objects and `sink dir` writes them (default:
# the run's folder, on the input's disk). On a tmpfs (/dev/shm), the destination's writes
# do not share the disk that tail reads from, as with a remote S3. STORE_DIR is where the
# outputs keep their stores (rustsink's store_dir, out_s3's buffer; default: the run's
# folder): with both on a tmpfs, no output of the run writes to a disk. SERVER_NICE runs
# s3s-fs at that niceness (default 0): at 19 it runs mostly when a core would be idle, a
# step towards a remote S3, which takes none of the node's cores.
#
# usage: FLUENT_BIT=/path/to/fluent-bit bash benches/fluent-bit.sh [MEGABYTES] [ROUNDS] [PIPELINES...]
#        (defaults: 1024 MiB, 2 rounds, every pipeline)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FLUENT_BIT:?FLUENT_BIT names the fluent-bit binary to measure}"
s3s_fs="${S3S_FS:-$(command -v s3s-fs || true)}"
[ -x "$s3s_fs" ] || { echo "s3s-fs not found: cargo install --locked s3s-fs@0.14.1 --features binary" >&2; exit 1; }
flush="${FLUSH:-1}"
megabytes="${1:-1024}"
rounds="${2:-2}"
shift $(( $# < 2 ? $# : 2 ))
pipelines=("$@")
[ ${#pipelines[@]} -gt 0 ] || pipelines=(null s3 rustsink-s3 rustsink-s3+Workers=1 rustsink-dir rustsink-redact)
work="$(mktemp -d)"
destination="$(mktemp -d -p "${DESTINATION_DIR:-$work}")"
stores="$(mktemp -d -p "${STORE_DIR:-$work}")"
server=""
trap '[ -z "$server" ] || kill "$server"; rm -rf "$work" "$destination" "$stores"' EXIT

cargo build --release --quiet
plugin="$PWD/target/release/librustsink.so"
cargo build --quiet --locked --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml \
  --target-dir target/components
cargo build --quiet --locked --release --target wasm32-wasip2 --manifest-path tests/components/Cargo.toml \
  --target-dir target/components -p noop
redact="$PWD/target/components/wasm32-wasip2/release/redact.wasm"
noop="$PWD/target/components/wasm32-wasip2/release/noop.wasm"

python3 benches/generate_logs.py "$megabytes" 1 varied > "$work/app.log"
bytes=$(stat -c %s "$work/app.log")
lines=$(wc -l < "$work/app.log")
cat > "$work/parsers.conf" <<CONF
[PARSER]
    Name         json
    Format       json
CONF

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
nice -n "${SERVER_NICE:-0}" "$s3s_fs" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$destination" > "$work/s3s.log" 2>&1 &
server=$!
endpoint="http://127.0.0.1:$port"
sleep 1

output() {
    local pipeline="${1%%+*}" run="$2" extra=""
    [ "$pipeline" = "$1" ] || extra="${1#*+}"
    case "$pipeline" in
        null) printf '[OUTPUT]\n    Name null\n    Match *\n' ;;
        s3) printf '[OUTPUT]\n    Name s3\n    Match *\n    bucket %s\n    region us-east-1\n    endpoint %s\n    compression gzip\n    store_dir %s\n    s3_key_format /s3/$TAG/%%Y/%%m/%%d/%%H/$UUID.gz\n' \
            "$run" "$endpoint" "$stores/$run-store" ;;
        rustsink-s3) printf '[OUTPUT]\n    Name rustsink\n    Match *\n    sink s3\n    bucket %s\n    region us-east-1\n    endpoint %s\n    store_dir %s\n    shutdown_timeout 60s\n' \
            "$run" "$endpoint" "$stores/$run-store" ;;
        rustsink-dir) printf '[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path %s\n    store_dir %s\n    shutdown_timeout 60s\n' \
            "$destination/$run" "$stores/$run-store" ;;
        rustsink-redact) printf '[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path %s\n    store_dir %s\n    shutdown_timeout 60s\n    filter.1 %s\n' \
            "$destination/$run" "$stores/$run-store" "$redact" ;;
        rustsink-noop) printf '[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path %s\n    store_dir %s\n    shutdown_timeout 60s\n    filter.1 %s\n' \
            "$destination/$run" "$stores/$run-store" "$noop" ;;
        *) echo "unknown pipeline $pipeline" >&2; exit 1 ;;
    esac
    case "$pipeline" in
        rustsink-*) printf '    metrics_listen 127.0.0.1:%s\n' "$metrics_port" ;;
    esac
    local pair
    for pair in ${extra//+/ }; do
        printf '    %s %s\n' "${pair%%=*}" "${pair#*=}"
    done
}

echo "input: $megabytes MiB, $lines lines, seed 1, varied; Flush $flush; Fluent Bit: $("$FLUENT_BIT" --version | head -1)"
metrics_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# CPU ticks (user + system) s3s-fs has taken so far.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$server/stat"; }
printf '%-34s %8s %8s %8s %12s %10s %8s %8s %10s %18s %14s\n' pipeline wall_s input_s MB/s CPU-s/GB peak_MiB objects ratio records flush_p50/p99_ms server_CPU-s/GB
for round in $(seq 1 "$rounds"); do
    for index in "${!pipelines[@]}"; do
        pipeline="${pipelines[$index]}"
        # Short: the name is the bucket's, and s3s-fs keeps an object's metadata in a file
        # named after its bucket and key.
        run="r$round-p$index"
        mkdir -p "$destination/$run"
        {
            printf '[SERVICE]\n    Flush %s\n    Grace 60\n    Log_Level warn\n    Parsers_File %s\n' "$flush" "$work/parsers.conf"
            printf '[INPUT]\n    Name tail\n    Path %s\n    Tag app\n    Read_from_Head on\n    Exit_On_Eof on\n' "$work/app.log"
            printf '    Buffer_Chunk_Size 512k\n    Buffer_Max_Size 512k\n    Parser json\n'
            output "${pipeline#before:}" "$run"
        } > "$work/$run.conf"
        run_plugin="$plugin"
        if [ "${pipeline#before:}" != "$pipeline" ]; then
            run_plugin="${BEFORE:?BEFORE names the librustsink.so of before: pipelines}"
        fi
        rm -f "$work/metrics"
        server_before=$(server_ticks)
        started=$(date +%s.%N)
        /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
            "$FLUENT_BIT" -e "$run_plugin" -c "$work/$run.conf" > "$work/$run.log" 2>&1 &
        fluent_bit=$!
        # One process scrapes while Fluent Bit runs, keeping the last answer: a new process
        # at every scrape would take CPU from the run measured.
        python3 - "$fluent_bit" "http://127.0.0.1:$metrics_port/metrics" "$work/metrics" <<'PY' &
import os, sys, time, urllib.request
pid, url, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while True:
    try:
        os.kill(pid, 0)
    except OSError:
        break
    try:
        text = urllib.request.urlopen(url, timeout=1).read()
        with open(path + ".new", "wb") as out:
            out.write(text)
        os.replace(path + ".new", path)
    except OSError:
        pass
    time.sleep(0.25)
PY
        scraper=$!
        wait "$fluent_bit" || { echo "$run failed:"; tail -20 "$work/$run.log"; exit 1; }
        wait "$scraper"
        latency=$(python3 - "$work/metrics" <<'PY'
import re, sys
try:
    text = open(sys.argv[1]).read()
except OSError:
    print("-"); sys.exit()
buckets = sorted(
    (float("inf") if le == "+Inf" else float(le), float(count))
    for le, count in re.findall(r'flush_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)', text))
if not buckets or buckets[-1][1] == 0:
    print("-"); sys.exit()
def quantile(q):
    rank, below, lower = q * buckets[-1][1], 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        below, lower = count, upper
print(f"{quantile(0.5) * 1000:.1f}/{quantile(0.99) * 1000:.1f}")
PY
)
        read -r wall user sys rss_kib < "$work/time"
        server_cpu=$(awk -v t0="$server_before" -v t1="$(server_ticks)" -v hz="$(getconf CLK_TCK)" -v b="$bytes" \
            'BEGIN { printf "%.2f", (t1 - t0) / hz / (b / 1e9) }')
        input=$(python3 - "$work/$run.log" "$started" <<'PY'
import re, sys, time
for line in open(sys.argv[1], errors="replace"):
    # Fluent Bit 1.9 logs whole seconds only.
    found = re.match(r"\[(\d+/\d+/\d+ \d+:\d+:\d+)(\.\d+)?\].*service will shutdown", line)
    if found:
        at = time.mktime(time.strptime(found[1], "%Y/%m/%d %H:%M:%S")) + float(found[2] or 0)
        print(f"{at - float(sys.argv[2]):.1f}")
        break
else:
    print("-")
PY
)
        # Objects: every file under the bucket's folder (s3s-fs keeps its metadata apart).
        read -r objects ratio records < <(python3 - "$destination/$run" <<'PY'
import gzip, os, subprocess, sys
objects = stored = raw = records = 0
for folder, _, files in os.walk(sys.argv[1]):
    for name in files:
        path = os.path.join(folder, name)
        data = open(path, "rb").read()
        objects += 1
        stored += len(data)
        if data[:2] == b"\x1f\x8b":
            text = gzip.decompress(data)
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            text = subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout
        else:
            text = data
        raw += len(text)
        records += text.count(b"\n")
print(objects, f"{raw / stored:.2f}" if stored else "-", records)
PY
)
        [ "${pipeline%%+*}" = null ] && records=-
        cpu_per_gb=$(awk -v u="$user" -v s="$sys" -v b="$bytes" 'BEGIN { print (u + s) / (b / 1e9) }')
        awk -v p="$pipeline" -v w="$wall" -v ins="$input" -v cpu="$cpu_per_gb" -v r="$rss_kib" -v b="$bytes" \
            -v o="$objects" -v ra="$ratio" -v rec="$records" -v lat="$latency" -v srv="$server_cpu" \
            'BEGIN { printf "%-34s %8.1f %8s %8.1f %12.1f %10.0f %8s %8s %10s %18s %14s\n", p, w, ins, b / 1048576 / w, cpu, r / 1024, (p == "null" ? "-" : o), (p == "null" ? "-" : ra), rec, lat, srv }'
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$pipeline" "$wall" "$input" "$cpu_per_gb" >> "$work/results"
        rm -rf "$destination/$run" "$stores/$run-store"
    done
done
echo "records in the input: $lines"
# Beside tail -> null of the same round: its wall time over the pipeline's (throughput
# as a share of null's), the same for input_s (the rate the input kept while the output
# ran, without the last interval's flushes and the shutdown), and the CPU added.
python3 - "$work/results" <<'PY'
import collections, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
null = {r[0]: r for r in rows if r[1] == "null"}
shares = collections.defaultdict(list)
for round_, pipeline, wall, input_s, cpu in rows:
    base = null.get(round_)
    if pipeline == "null" or base is None:
        continue
    shares[pipeline].append((
        float(base[2]) / float(wall),
        float(base[3]) / float(input_s) if "-" not in (base[3], input_s) else None,
        float(cpu) - float(base[4]),
    ))
if shares:
    print(f"\nbeside tail -> null, round by round ({len(null)} rounds):")
    for pipeline, values in shares.items():
        walls = [v[0] for v in values]
        inputs = [v[1] for v in values if v[1] is not None]
        added = [v[2] for v in values]
        print(f"{pipeline:34} wall {' / '.join(f'{w:.2f}' for w in walls)} (mean {sum(walls) / len(walls):.2f})"
              + (f"; input {sum(inputs) / len(inputs):.2f}" if inputs else "")
              + f"; CPU-s/GB added {min(added):.1f} to {max(added):.1f}")
PY
