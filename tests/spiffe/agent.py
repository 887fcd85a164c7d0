"""A SPIFFE Workload API server for certdeck's tests (no SPIRE agent installs here).

Written on the generated gRPC stubs PyPI `spiffe` ships (spiffe._proto.workload_pb2_grpc),
listening on a Unix socket as a SPIRE agent does, and behaving like one where certdeck can
tell: a call without the metadata `workload.spiffe.io: true` is refused with
InvalidArgument "security header missing from request"; a workload with no identity gets
PermissionDenied "no identity issued"; FetchX509SVID is a stream that stays open, its first
message the current SVIDs and every further one an update (a rotation).

SVIDs are issued by a test CA made with `cryptography` (ECDSA P-256), with what the X509-SVID
standard requires: one spiffe:// URI SAN, not a CA, digitalSignature key usage.

Usage: agent.py SOCKET DIR
  DIR/config.json  read at start: {"trust_domain": "example.test",
                   "svids": [{"id": "spiffe://example.test/web", "hint": "internal",
                              "lifetime": 3600, "age": 600}],
                   "federated": ["partner.test"]}
  DIR/issued.json  written after every issue: the SPIFFE IDs, serials (hex), SHA-256s, hints,
                   and the serials of every bundle CA, by trust domain.
  DIR/stats.json   counters: calls, refused (no header), open streams, messages sent.
Control, polled every 50 ms (each file is removed once acted on, except `mode`):
  DIR/rotate       re-issue every SVID (or the SPIFFE IDs listed, one a line) and push the
                   new answer on every open stream.
  DIR/mode         ok | deny (PermissionDenied) | hang (accept and never answer) |
                   bad_der (the first SVID's certificate is garbage) | unavailable
  DIR/break        end every open stream with UNAVAILABLE (the agent restarting its cache).
"""
import datetime
import hashlib
import json
import os
import sys
import threading
import time
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spiffe._proto import workload_pb2, workload_pb2_grpc

SOCKET, DIR = sys.argv[1], sys.argv[2]
LOCK = threading.Condition()
STATE = {"version": 0, "response": None, "broken": 0}
STATS = {"calls": 0, "refused": 0, "open_streams": 0, "messages": 0, "denied": 0}


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def make_ca(td, parent=None, cn=None):
    """A CA for `td`: self-signed, or signed by `parent` (cert, key): an intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn or f"{td} test CA")])
    issuer_cert, issuer_key = parent if parent else (None, key)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(issuer_cert.subject if issuer_cert else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(days=1))
            .not_valid_after(now() + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{td}")]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    return cert, key


def issue(ca, ca_key, spiffe_id, lifetime, age):
    key = ec.generate_private_key(ec.SECP256R1())
    start = now() - datetime.timedelta(seconds=age)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIFFE test")]))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(seconds=lifetime))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe_id)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    der_key = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert, der_key


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


CONFIG = json.load(open(os.path.join(DIR, "config.json")))
TD = CONFIG.get("trust_domain", "example.test")
CA, CA_KEY = make_ca(TD)
# SVIDs are signed by an intermediate (as with a SPIRE server under an upstream authority):
# each X.509-SVID is the leaf and the intermediate; the bundle holds the root.
INT, INT_KEY = make_ca(TD, (CA, CA_KEY), cn=f"{TD} test intermediate")
FEDERATED = {td: make_ca(td)[0] for td in CONFIG.get("federated", [])}
ISSUED = {}  # spiffe id -> (cert, key der, entry config)


def write_json(name, value):
    tmp = os.path.join(DIR, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, os.path.join(DIR, name))


def write_stats():
    write_json("stats.json", STATS)


def reissue(only=None):
    """(Re-)issue the SVIDs (all, or the SPIFFE IDs in `only`) and publish the new answer."""
    for e in CONFIG["svids"]:
        if only and e["id"] not in only:
            continue
        # A rotated SVID is fresh: its age starts again.
        age = e.get("age", 60) if e["id"] not in ISSUED else 5
        cert, key = issue(INT, INT_KEY, e["id"], e.get("lifetime", 3600), age)
        ISSUED[e["id"]] = (cert, key, e)
    resp = workload_pb2.X509SVIDResponse()
    for e in CONFIG["svids"]:
        cert, key, _ = ISSUED[e["id"]]
        resp.svids.add(spiffe_id=e["id"], x509_svid=der(cert) + der(INT), x509_svid_key=key,
                       bundle=der(CA), hint=e.get("hint", ""))
    for td, c in FEDERATED.items():
        resp.federated_bundles[f"spiffe://{td}"] = der(c)
    with LOCK:
        STATE["response"] = resp
        STATE["version"] += 1
        LOCK.notify_all()
    write_json("issued.json", {
        "version": STATE["version"],
        "svids": [{"id": e["id"], "hint": e.get("hint", ""),
                   "serial": format(ISSUED[e["id"]][0].serial_number, "x"),
                   "sha256": hashlib.sha256(der(ISSUED[e["id"]][0])).hexdigest()}
                  for e in CONFIG["svids"]],
        "intermediate": format(INT.serial_number, "x"),
        "bundles": {TD: [format(CA.serial_number, "x")],
                    **{td: [format(c.serial_number, "x")] for td, c in FEDERATED.items()}},
    })


def mode():
    try:
        return open(os.path.join(DIR, "mode")).read().strip() or "ok"
    except FileNotFoundError:
        return "ok"


def answer(resp):
    """The response as sent: with a garbage certificate in `bad_der` mode."""
    if mode() != "bad_der":
        return resp
    bad = workload_pb2.X509SVIDResponse()
    bad.CopyFrom(resp)
    bad.svids[0].x509_svid = b"\x30\x82\x01\x00" + b"\x00" * 8
    return bad


class Agent(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    def FetchX509SVID(self, request, context):
        with LOCK:
            STATS["calls"] += 1
        md = dict(context.invocation_metadata())
        if md.get("workload.spiffe.io") != "true":
            with LOCK:
                STATS["refused"] += 1
            write_stats()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")
        m = mode()
        if m == "deny":
            with LOCK:
                STATS["denied"] += 1
            write_stats()
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no identity issued")
        if m == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "the agent is starting")
        if m == "hang":
            while context.is_active():
                time.sleep(0.05)
            return
        with LOCK:
            STATS["open_streams"] += 1
            version, broken = STATE["version"], STATE["broken"]
            resp = STATE["response"]
        write_stats()
        try:
            with LOCK:
                STATS["messages"] += 1
            write_stats()
            yield answer(resp)
            while context.is_active():
                with LOCK:
                    LOCK.wait(0.2)
                    if STATE["broken"] != broken:
                        break
                    if STATE["version"] == version:
                        continue
                    version, resp = STATE["version"], STATE["response"]
                    STATS["messages"] += 1
                write_stats()
                yield answer(resp)
        finally:
            with LOCK:
                STATS["open_streams"] -= 1
            write_stats()
        if context.is_active():
            context.abort(grpc.StatusCode.UNAVAILABLE, "the agent ended the stream")


def control():
    while True:
        time.sleep(0.05)
        p = os.path.join(DIR, "rotate")
        if os.path.exists(p):
            only = [l.strip() for l in open(p).read().splitlines() if l.strip()]
            os.remove(p)
            reissue(only or None)
        p = os.path.join(DIR, "break")
        if os.path.exists(p):
            os.remove(p)
            with LOCK:
                STATE["broken"] += 1
                LOCK.notify_all()


def main():
    reissue()
    write_stats()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(Agent(), server)
    server.add_insecure_port("unix://" + SOCKET)
    server.start()
    threading.Thread(target=control, daemon=True).start()
    # The socket is there: say so (the test waits for this file).
    write_json("ready.json", {"pid": os.getpid(), "socket": SOCKET})
    server.wait_for_termination()


if __name__ == "__main__":
    main()
