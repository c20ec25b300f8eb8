#!/usr/bin/env bash
# The per-record cost of filter components: a no-op component (the boundary alone), the
# redact component, and the same masking compiled natively, over the seeded logs in
# batches as Fluent Bit sends them.
#
# usage: bash benches/filters.sh [MEGABYTES] [RECORDS_PER_BATCH]     (default 64, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
megabytes="${1:-64}"
per_batch="${2:-1000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

bash .ci/setup > /dev/null
for components in plugins tests/components; do
    cargo build --quiet --locked --release --target wasm32-wasip2 \
        --manifest-path "$components/Cargo.toml" --target-dir target/components
done
cargo build --quiet --release --example filter_bench
python3 benches/generate_logs.py "$megabytes" 1 > "$work/app.log"
wasm=target/components/wasm32-wasip2/release
/usr/bin/time -f "wall %e s, CPU %U s user + %S s system, peak RSS %M KiB" \
    target/release/examples/filter_bench "$work/app.log" "$wasm/noop.wasm" "$wasm/redact.wasm" \
    "$per_batch"
ls -l "$wasm"/*.wasm | awk '{printf "component %s: %d KB\n", $NF, $5 / 1000}'
