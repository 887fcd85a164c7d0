#!/usr/bin/env bash
# /metrics render time with 10,000 and 100,000 certificates (release build), with the
# `scan -o prometheus` writer as the baseline in the same run. Figures go to BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example metrics_render
for n in 10000 100000; do
  target/release/examples/metrics_render "$n" "${ROUNDS:-9}"
done
PROM_SOURCE=1 target/release/examples/metrics_render 100000 "${ROUNDS:-5}"
