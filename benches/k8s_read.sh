#!/usr/bin/env bash
# Reading 10,000 TLS Secrets across 100 namespaces from the fixture API server with the release
# binary; prints wall time and peak RSS (median of ROUNDS runs), with and without 16 KiB of
# non-certificate payload per Secret. Usage: bash benches/k8s_read.sh   (NS=100 PER_NS=100 ROUNDS=5)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin certdeck --example k8s_read
./target/release/examples/k8s_read ./target/release/certdeck
