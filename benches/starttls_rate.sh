#!/usr/bin/env bash
# STARTTLS scan rate: certdeck against exim4 (SMTP STARTTLS and implicit TLS), dovecot (IMAP
# STARTTLS and IMAPS) and PostgreSQL 15 (SSLRequest), beside `openssl s_client` in a loop
# against the same ports, all in the same run. Prints a Markdown report (BENCHMARKS.md keeps one).
#
#   benches/starttls_rate.sh [N=1000] [ROUNDS=5] [LOOP=200]
#
# N distinct targets per port (the same server under N names, `?sni=hK.bench.test`), so every
# target is its own connection, dialogue and handshake. LOOP openssl runs per port, once one
# after another and once 8 at a time (xargs -P 8). Needs the packages tests/run.sh installs.
# Everything listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
ROUNDS=${2:-5}
LOOP=${3:-200}
CD=${CERTDECK:-target/release/certdeck}
W=$(mktemp -d)
chmod 755 "$W"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  [ -f "$W/pg/data/postmaster.pid" ] && kill -TERM "$(head -1 "$W/pg/data/postmaster.pid")" 2>/dev/null || true
  sleep 1
  rm -rf "$W"
}
trap cleanup EXIT
[ -x "$CD" ] || cargo build --release --quiet --bin certdeck

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/key.pem" \
  -out "$W/cert.pem" -days 60 -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test" 2>/dev/null

# exim4: STARTTLS on SMTP, implicit TLS on SMTPS.
SMTP=$(port); SMTPS=$(port)
mkdir -p "$W/exim/spool" "$W/exim/log"
cp "$W/cert.pem" "$W/key.pem" "$W/exim/"
chown -R Debian-exim "$W/exim"
cat >"$W/exim/exim.conf" <<CONF
primary_hostname = bench.test
exim_path = /usr/sbin/exim4
keep_environment =
spool_directory = $W/exim/spool
log_file_path = $W/exim/log/%s.log
pid_file_path = $W/exim/exim.pid
local_interfaces = 127.0.0.1
daemon_smtp_ports = $SMTP : $SMTPS
tls_on_connect_ports = $SMTPS
tls_advertise_hosts = *
tls_certificate = $W/exim/cert.pem
tls_privatekey = $W/exim/key.pem
smtp_accept_max = 0
smtp_connect_backlog = 1024
log_selector = -all
begin acl
begin routers
begin transports
CONF
setsid exim4 -C "$W/exim/exim.conf" -bdf >"$W/exim/out.log" 2>&1 &
PIDS+=($!)

# dovecot: IMAP STARTTLS and IMAPS.
IMAP=$(port); IMAPS=$(port)
mkdir -p "$W/dove/base" "$W/dove/state" "$W/dove/home"
cat >"$W/dove/dovecot.conf" <<CONF
protocols = imap
listen = 127.0.0.1
base_dir = $W/dove/base
state_dir = $W/dove/state
log_path = /dev/null
ssl = yes
ssl_cert = <$W/cert.pem
ssl_key = <$W/key.pem
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
default_process_limit = 2000
default_client_limit = 4000
mail_location = mbox:$W/dove/home/mail
passdb {
  driver = static
  args = password=unused
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=$W/dove/home
}
service imap-login {
  inet_listener imap {
    port = $IMAP
  }
  inet_listener imaps {
    port = $IMAPS
  }
}
CONF
setsid dovecot -F -c "$W/dove/dovecot.conf" >"$W/dove/out.log" 2>&1 &
PIDS+=($!)

# PostgreSQL 15: SSLRequest.
PG=$(port)
mkdir -p "$W/pg/data" "$W/pg/sock"
cp "$W/cert.pem" "$W/key.pem" "$W/pg/"
chmod 600 "$W/pg/key.pem"
chown -R postgres "$W/pg"
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$W/pg/data" -A trust -U postgres >/dev/null
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$W/pg/data" -w -l "$W/pg/log" -o \
  "-c listen_addresses=127.0.0.1 -p $PG -c unix_socket_directories=$W/pg/sock -c ssl=on \
   -c ssl_cert_file=$W/pg/cert.pem -c ssl_key_file=$W/pg/key.pem -c fsync=off -c max_connections=400" \
  start >/dev/null

for p in $SMTP $SMTPS $IMAP $IMAPS $PG; do wait_port "$p"; done

# name, url prefix (scheme://127.0.0.1:port), openssl args
targets() { for i in $(seq "$N"); do echo "$1?sni=h$i.bench.test"; done >"$W/$2.txt"; }
targets "smtp://127.0.0.1:$SMTP" smtp
targets "smtps://127.0.0.1:$SMTPS" smtps
targets "imap://127.0.0.1:$IMAP" imap
targets "imaps://127.0.0.1:$IMAPS" imaps
targets "postgres://127.0.0.1:$PG" postgres

# certdeck: median wall seconds over ROUNDS, and how many rows carried a certificate.
cd_run() {
  local name=$1 t=()
  for _ in $(seq "$ROUNDS"); do
    /usr/bin/time -f "%e" -o "$W/t" "$CD" scan --targets-file "$W/$name.txt" -o json --timeout 20s \
      >"$W/$name.json" 2>/dev/null || true
    t+=("$(cat "$W/t")")
  done
  local ok
  ok=$(python3 -c "import json; print(sum(1 for r in json.load(open('$W/$name.json')) if r['sha256']))")
  printf '%s\n' "${t[@]}" | sort -n | awk -v ok="$ok" '{a[NR]=$1} END {print a[int((NR+1)/2)], ok}'
}
# openssl s_client LOOP times, PAR at once: wall seconds, successes.
os_run() {
  local par=$1; shift
  seq "$LOOP" | /usr/bin/time -f "%e" -o "$W/t" xargs -P "$par" -I{} sh -c \
    'openssl s_client "$@" -servername h{}.bench.test </dev/null 2>/dev/null | grep -c "BEGIN CERTIFICATE" || true' \
    _ "$@" >"$W/os.out"
  echo "$(cat "$W/t") $(awk '$1>0' "$W/os.out" | wc -l)"
}

row() {
  local label=$1 name=$2; shift 2
  read -r cd_s cd_ok < <(cd_run "$name")
  read -r o1_s o1_ok < <(os_run 1 "$@")
  read -r o8_s o8_ok < <(os_run 8 "$@")
  awk -v l="$label" -v n="$N" -v cs="$cd_s" -v cok="$cd_ok" -v loop="$LOOP" \
      -v o1="$o1_s" -v o1ok="$o1_ok" -v o8="$o8_s" -v o8ok="$o8_ok" 'BEGIN {
    cr = n / cs; r1 = loop / o1; r8 = loop / o8
    printf "| %s | %.0f (%d/%d read) | %.0f (%d/%d) | %.0f (%d/%d) | %.1fx |\n",
      l, cr, cok, n, r1, o1ok, loop, r8, o8ok, loop, cr / r8 }'
}

echo "STARTTLS scan rate, $(date -u +%F), N=$N targets per port, median of $ROUNDS certdeck runs, $LOOP openssl runs"
echo
echo "| port | certdeck scan, targets/s | openssl s_client loop, /s | openssl, 8 at once, /s | certdeck / openssl x8 |"
echo "|---|---:|---:|---:|---:|"
row "exim SMTP STARTTLS (smtp://)" smtp -starttls smtp -connect "127.0.0.1:$SMTP"
row "exim SMTPS, implicit TLS (smtps://)" smtps -connect "127.0.0.1:$SMTPS"
row "dovecot IMAP STARTTLS (imap://)" imap -starttls imap -connect "127.0.0.1:$IMAP"
row "dovecot IMAPS, implicit TLS (imaps://)" imaps -connect "127.0.0.1:$IMAPS"
row "PostgreSQL 15 SSLRequest (postgres://)" postgres -starttls postgres -connect "127.0.0.1:$PG"
