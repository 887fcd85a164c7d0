#!/usr/bin/env bash
# /metrics with 10,000 and 100,000 certificates (release build; the `aws`, `azure` and `gcp`
# features do not touch this code and are left out to keep the build short): render time and
# scrape latency over HTTP on loopback, the exporter as it was (benches/metrics_render/
# baseline.rs, rendering on every GET) against the current one (bodies rendered ahead, gzip),
# in the same run. Figures go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --no-default-features --example metrics_render
for n in 10000 100000; do
  target/release/examples/metrics_render "$n" "${ROUNDS:-9}"
done
PROM_SOURCE=1 target/release/examples/metrics_render 100000 "${ROUNDS:-5}"
