#!/usr/bin/env bash
# Scan benchmark: certdeck against today's peers and a bare tokio-rustls loop, on the shared
# nginx fleet, all measured in the same run. Prints a Markdown report (BENCHMARKS.md keeps one).
#
#   benches/scan_fleet.sh [N=1000] [ROUNDS=7]
#
# Needs: nginx-light, prometheus-blackbox-exporter, python3 with `cryptography` (Debian:
# python3-cryptography, or pip). Everything listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
ROUNDS=${2:-7}
SHARED=$(readlink -f ../shared/bench)
DIR=${FLEET_DIR:-/tmp/certdeck-bench-fleet}
OUT=$(mktemp -d)
BB_PORT=19115
trap 'bash "$SHARED/fleet.sh" down "$DIR" >/dev/null 2>&1 || true; [ -n "${BB_PID:-}" ] && kill "$BB_PID" 2>/dev/null; rm -rf "$OUT"' EXIT

cargo build --release --quiet --bin certdeck --example bare_probe --example parse_bundle
CD=target/release/certdeck
BARE=target/release/examples/bare_probe
PARSE=target/release/examples/parse_bundle

FLEET_BASE=20000 bash "$SHARED/fleet.sh" up "$N" "$DIR" >/dev/null
FLEET_BASE=20000 bash "$SHARED/fleet.sh" hang 3 "$DIR" >/dev/null
prometheus-blackbox-exporter --config.file="$SHARED/blackbox.yml" --web.listen-address=127.0.0.1:$BB_PORT \
  >"$OUT/bb.log" 2>&1 &
BB_PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$BB_PORT/metrics" >/dev/null 2>&1 && break; sleep 0.1; done

T=$DIR/targets.txt
cat "$DIR/targets.txt" "$DIR/bad-targets.txt" >"$OUT/mixed.txt"

# name, command: each run records "wall_seconds peak_kb" into $OUT/name.txt
run() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$OUT/t" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || true
  cat "$OUT/t" >>"$OUT/$name.txt"
}
bb_peak() { awk '/VmHWM/ {print $2}' "/proc/$BB_PID/status"; }

for r in $(seq "$ROUNDS"); do
  run certdeck "$CD" scan --targets-file "$T" -o json
  run bare "$BARE" "$T" 256
  run py_probe python3 "$SHARED/py_probe.py" "$T"
  run blackbox python3 "$SHARED/bb_client.py" "$T" -e 127.0.0.1:$BB_PORT
done
echo "0 $(bb_peak)" >"$OUT/blackbox_exporter_rss.txt"

# Correctness of each run's last output: how many endpoints each tool actually read.
read_certdeck=$(python3 -c "import json,sys; print(sum(1 for r in json.load(open('$OUT/certdeck.out')) if r['sha256']))")
read_bare=$(cat "$OUT/bare.out")
read_py=$(grep -vc $'\tERROR\t' "$OUT/py_probe.out" || true)
read_bb=$(grep -vc $'\tERROR\t' "$OUT/blackbox.out" || true)

# Mixed list: 9 bad ports (3 hang, 3 plain HTTP, 3 closed) among the N good ones, 5 s timeout.
/usr/bin/time -f "%e %M" -o "$OUT/mixed_cd.t" "$CD" scan --targets-file "$OUT/mixed.txt" --timeout 5s -o json \
  >"$OUT/mixed_cd.out" 2>/dev/null || true
mixed_bad=$(python3 -c "
import json; r=json.load(open('$OUT/mixed_cd.out')); bad=[x for x in r if x['error']]
print(len(bad))")
/usr/bin/time -f "%e %M" -o "$OUT/mixed_py.t" timeout 120 python3 "$SHARED/py_probe.py" "$OUT/mixed.txt" -t 5 \
  >"$OUT/mixed_py.out" 2>/dev/null || true
/usr/bin/time -f "%e %M" -o "$OUT/mixed_bb.t" timeout 120 python3 "$SHARED/bb_client.py" "$OUT/mixed.txt" \
  -e 127.0.0.1:$BB_PORT >"$OUT/mixed_bb.out" 2>/dev/null || true

# Memory as the target list grows (same fleet, prefixes of the list, 5 rounds each).
for k in 4 2 1; do
  head -n $((N / k)) "$T" >"$OUT/t$k.txt"
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f "%e %M" -a -o "$OUT/mem$k.txt" "$CD" scan --targets-file "$OUT/t$k.txt" -o csv >/dev/null 2>&1 || true
  done
done

# Files: a PEM bundle of 20 x the fleet's certificates.
for _ in $(seq 20); do cat "$DIR"/certs/[0-9]*.crt; done >"$OUT/bundle.pem"
ncerts=$(grep -c 'BEGIN CERTIFICATE' "$OUT/bundle.pem")
parse=$("$PARSE" "$OUT/bundle.pem" 7)
cat >"$OUT/py_bundle.py" <<'PY'
import statistics, sys, time
from cryptography import x509
data = open(sys.argv[1], "rb").read()
times = []
for _ in range(7):
    t = time.perf_counter()
    certs = x509.load_pem_x509_certificates(data)
    for c in certs:  # read the fields certdeck reports
        c.not_valid_after_utc; c.not_valid_before_utc; c.subject.rfc4514_string(); c.issuer.rfc4514_string()
        c.serial_number; c.fingerprint(c.signature_hash_algorithm.__class__()) if False else None
    times.append(time.perf_counter() - t)
med = statistics.median(times)
print(f"{len(certs)}\t{med:.4f}\t{len(certs)/med:.0f}")
PY
pyparse=$(python3 "$OUT/py_bundle.py" "$OUT/bundle.pem")
/usr/bin/time -f "%e %M" -o "$OUT/cli_bundle.t" "$CD" scan -f "$OUT/bundle.pem" -o csv >/dev/null 2>&1 || true
cli_bundle=$(grep '^[0-9]' "$OUT/cli_bundle.t" | tail -1)

python3 - "$OUT" "$N" "$ROUNDS" "$read_certdeck" "$read_bare" "$read_py" "$read_bb" "$mixed_bad" \
  "$ncerts" "$parse" "$pyparse" "$cli_bundle" <<'PY'
import statistics, sys
out, n, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reads = dict(zip(["certdeck", "bare", "py_probe", "blackbox"], sys.argv[4:8]))
mixed_bad, ncerts, parse, pyparse, cli_bundle = sys.argv[8:13]
def load(name):
    # /usr/bin/time adds "Command exited with non-zero status N" lines: keep the figures.
    rows = [l.split() for l in open(f"{out}/{name}.txt") if l.strip() and l[0].isdigit()]
    return [float(r[0]) for r in rows], [int(r[1]) for r in rows]
med = {}
print(f"### Scan of N={n} nginx endpoints, median of {rounds} interleaved runs\n")
print("| tool | median wall s | endpoints/s | peak RSS MiB | endpoints read |")
print("|---|---:|---:|---:|---:|")
bb_rss = int(open(f"{out}/blackbox_exporter_rss.txt").read().split()[1])
for name, label in [("certdeck", "certdeck scan -o json"), ("bare", "bare tokio-rustls loop (ceiling)"),
                    ("py_probe", "py_probe.py (asyncio, -c 256)"), ("blackbox", "blackbox_exporter + bb_client.py")]:
    t, m = load(name)
    med[name] = statistics.median(t)
    rss = statistics.median(m) / 1024
    extra = f" (+ exporter {bb_rss/1024:.0f})" if name == "blackbox" else ""
    print(f"| {label} | {med[name]:.3f} | {n/med[name]:.0f} | {rss:.1f}{extra} | {reads[name]} |")
best_peer = min(med["py_probe"], med["blackbox"])
print(f"\ncertdeck vs the better peer: {best_peer/med['certdeck']:.2f}x; "
      f"certdeck vs the bare loop: {med['bare']/med['certdeck']*100:.0f}% of its throughput\n")
def t(name):
    return [l for l in open(f"{out}/{name}.t") if l[0].isdigit()][-1].split()
print("### Mixed list: N good + 3 hanging + 3 plain-HTTP + 3 closed ports, 5 s timeout\n")
print("| tool | wall s | peak RSS MiB |")
print("|---|---:|---:|")
for name, label in [("mixed_cd", f"certdeck (bad ports reported: {mixed_bad}/9)"), ("mixed_py", "py_probe.py -t 5"),
                    ("mixed_bb", "blackbox_exporter + bb_client.py")]:
    w, m = t(name)
    print(f"| {label} | {w} | {int(m)/1024:.1f} |")
print(f"\n### certdeck peak RSS as the target count grows (median of 5)\n")
print("| targets | peak RSS MiB |")
print("|---:|---:|")
for k in (4, 2, 1):
    _, m = load(f"mem{k}")
    print(f"| {n // k} | {statistics.median(m) / 1024:.1f} |")
pn, pt, pr = parse.split("\t"); qn, qt, qr = pyparse.split("\t"); cw, cm = cli_bundle.split()
print(f"\n### Certificate files: one PEM bundle of {ncerts} certificates\n")
print("| reader | certificates | median s | certificates/s |")
print("|---|---:|---:|---:|")
print(f"| certdeck parse (in process, all record fields) | {pn} | {pt} | {int(pr):,} |")
print(f"| pyca/cryptography load_pem_x509_certificates + fields | {qn} | {qt} | {int(qr):,} |")
print(f"| certdeck scan -f bundle -o csv (whole process) | {ncerts} | {cw} | {int(ncerts)/float(cw):,.0f} |")
print(f"\ncertdeck parse vs pyca/cryptography: {int(pr)/int(qr):.2f}x")
PY
