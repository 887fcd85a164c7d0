#!/usr/bin/env bash
# Reading N ACM certificates (N/2 in us-east-1, N/2 in eu-west-1) from moto's server on
# loopback: `certdeck scan --aws` (release binary, ROUNDS runs, median) against what a user does
# today in the same run, `aws acm list-certificates` then `aws acm describe-certificate` per ARN
# in a shell loop (BASE_ROUNDS runs). Then the library reader's peak RSS as the account grows.
# Usage: bash benches/aws_read.sh        (N=1000 ROUNDS=5 BASE_ROUNDS=1; N divisible by 8)
#   PROFILE=debug uses a debug build (much cheaper to build; certdeck only gets slower, so the
#   ratio against the AWS CLI loop is a conservative one).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
ROUNDS=${ROUNDS:-5}
BASE_ROUNDS=${BASE_ROUNDS:-1}
PROFILE=${PROFILE:-release}
VENV=target/testenv
[ -x $VENV/bin/moto_server ] && [ -x $VENV/bin/aws ] || {
  python3 -m venv $VENV && $VENV/bin/pip install -q 'moto[server]' boto3 awscli; }
if [ "$PROFILE" = release ]; then cargo build --release --locked --bin certdeck --example aws_read
else cargo build --locked --bin certdeck --example aws_read; fi
BIN=$PWD/target/$PROFILE/certdeck
READ=$PWD/target/$PROFILE/examples/aws_read

WORK=$(mktemp -d)
PORT=$($VENV/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$VENV/bin/moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'kill $MOTO 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done

for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
export HOME=$WORK AWS_CONFIG_FILE=$WORK/config AWS_SHARED_CREDENTIALS_FILE=$WORK/credentials
export AWS_EC2_METADATA_DISABLED=true
printf '[profile bench]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:%s\n' "$PORT" >"$AWS_CONFIG_FILE"
printf '[bench]\naws_access_key_id = AKIABENCHBENCHBENCH0\naws_secret_access_key = benchbenchbenchbenchbenchbenchbenchbench\n' >"$AWS_SHARED_CREDENTIALS_FILE"

seed() { # seed COUNT_PER_REGION PREFIX
  printf '{"endpoint": "http://127.0.0.1:%s", "ops": [{"op": "generate", "region": "us-east-1", "count": %s, "prefix": "%s-e"}, {"op": "generate", "region": "eu-west-1", "count": %s, "prefix": "%s-w"}]}' \
    "$PORT" "$1" "$2" "$1" "$2" |
    AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x $VENV/bin/python tests/aws/seed.py >/dev/null
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

KT=RSA_1024,RSA_2048,RSA_3072,RSA_4096,EC_prime256v1,EC_secp384r1,EC_secp521r1
aws_loop() {
  local n=0
  LOOP_START=$(date +%s.%N)
  for r in us-east-1 eu-west-1; do
    for arn in $($VENV/bin/aws --profile bench --region $r acm list-certificates --includes keyTypes=$KT \
        --query 'CertificateSummaryList[].CertificateArn' --output text); do
      $VENV/bin/aws --profile bench --region $r acm describe-certificate --certificate-arn "$arn" >/dev/null
      n=$((n + 1))
      echo "$n $(echo "$(date +%s.%N) - $LOOP_START" | bc)" >>"$WORK/loop.progress"
      cp "$WORK/loop.progress" target/aws_loop.progress
    done
  done
  echo "$n"
}

certdeck_once() { # prints: seconds peak_kib rows
  /usr/bin/time -f '%e %M' -o "$WORK/t" "$BIN" scan --aws --aws-profile bench \
    --aws-region us-east-1 --aws-region eu-west-1 -o json >"$WORK/out.json" || true
  echo "$(tail -n 1 "$WORK/t") $($VENV/bin/python -c 'import json,sys; print(sum(1 for r in json.load(open(sys.argv[1])) if r["sha256"]))' "$WORK/out.json")"
}

# Memory as the account grows, N/4, N/2, N: the library reader (records dropped as they arrive)
# and the scan binary (which keeps every row for its sorted report).
echo "count reader_records reader_s reader_peak_rss_kib scan_s scan_peak_rss_kib scan_rows"
total=0
for part in $((N / 4)) $((N / 4)) $((N / 2)); do
  seed $((part / 2)) "g$total"
  total=$((total + part))
  r=$("$READ" bench us-east-1 eu-west-1)
  s=$(certdeck_once)
  echo "$total $(echo "$r" | awk '{print $2, $8, $10}') $s"
done

# certdeck against the AWS CLI loop, same account (N certificates), same run. The loop logs
# its progress (count, seconds) to $WORK/loop.progress, copied to target/aws_loop.progress.
: >"$WORK/cd"
: >"$WORK/base"
for i in $(seq "$ROUNDS"); do certdeck_once >>"$WORK/cd"; done
for i in $(seq "$BASE_ROUNDS"); do
  s=$(date +%s.%N); n=$(aws_loop); e=$(date +%s.%N)
  echo "$(echo "$e - $s" | bc) $n" >>"$WORK/base"
  certdeck_once >>"$WORK/cd"
done
cd_med=$(cut -d' ' -f1 "$WORK/cd" | median)
cd_rss=$(cut -d' ' -f2 "$WORK/cd" | median)
base_med=$(cut -d' ' -f1 "$WORK/base" | median)
echo "certdeck scan runs (s KiB rows):"; cat "$WORK/cd"
echo "aws cli loop runs (s described):"; cat "$WORK/base"
echo "RESULT certdeck_median_s=$cd_med certdeck_peak_rss_kib=$cd_rss aws_loop_median_s=$base_med ratio=$(echo "scale=1; $base_med / $cd_med" | bc)"
