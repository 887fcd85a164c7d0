#!/usr/bin/env bash
# Clean-build cost of the two ways to reach Google Certificate Manager (BENCHMARKS.md): what
# certdeck uses (google-cloud-auth + reqwest) against the official
# google-cloud-certificatemanager-v1, each a scratch crate built from an empty target dir.
# Usage: bash benches/gcp_build_cost.sh   (PROFILE=--release by default; prints CPU and wall)
set -euo pipefail
PROFILE=${PROFILE:---release}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
cargo new -q --bin auth_reqwest
cat >>auth_reqwest/Cargo.toml <<'TOML'
google-cloud-auth = { version = "1.19", default-features = false }
reqwest = { version = "0.13", default-features = false, features = ["rustls-no-provider", "json", "http2"] }
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
serde_json = "1"
TOML
cargo new -q --bin official
cat >>official/Cargo.toml <<'TOML'
google-cloud-certificatemanager-v1 = { version = "1.16", default-features = false }
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
TOML
for c in auth_reqwest official; do
  (cd "$c" && cargo fetch -q &&
    /usr/bin/time -f "$c: %e s wall, %U s user, %S s sys" cargo build -q $PROFILE &&
    echo "$c: $(ls target/*/deps/*.rlib | wc -l) rlibs, $(cargo tree -e normal --prefix none | sort -u | wc -l) packages")
done
