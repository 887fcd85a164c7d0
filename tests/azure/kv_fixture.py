#!/usr/bin/env python3
"""A loopback Azure Key Vault (certificates) and Entra ID token endpoint, for certdeck's tests.

No Key Vault emulator exists, so this follows the REST reference (api-version 7.5, the shapes
azure-keyvault-certificates and azure_security_keyvault_certificates parse), and the test
proves it faithful by driving it with the official Python SDK (sdk_client.py) beside certdeck:

- HTTPS only (the SDKs refuse http), with a certificate from the test's CA.
- Entra ID on the same listener: `/{tenant}/v2.0/.well-known/openid-configuration` (MSAL's
  tenant discovery) and `POST /{tenant}/oauth2/v2.0/token` (client secret, or a client
  assertion for workload identity), scope `https://vault.azure.net/.default`; AADSTS errors.
- The vault: a request without a token gets 401 with
  `WWW-Authenticate: Bearer authorization="https://HOST/TENANT", resource="https://vault.azure.net"`;
  `GET /certificates` and `/certificates/NAME/versions` paged with `maxresults` and an absolute
  `nextLink` (`$skiptoken`); `GET /certificates/NAME/[VERSION]` with `cer` (base64 DER),
  `attributes` (epoch seconds) and `policy`; `GET /certificates/NAME/policy`, `GET /certificates/NAME/pending` (404
  PendingCertificateNotFound when none); `POST /certificates/NAME/create` -> 202 and an
  operation that completes (a new self-signed version from the policy) or fails.
- Faults from the control file (re-read on every request): 429 with Retry-After, 403
  AccessDenied per operation, a page answering 500, a certificate whose `cer` does not parse,
  a slow answer, a creation that fails.

Usage: kv_fixture.py PORT CERT KEY SEED_JSON CONTROL_JSON STATS_JSON
"""

import base64
import datetime
import hashlib
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PORT, CERT, KEY, SEED, CONTROL, STATS = sys.argv[1:7]
HOST = f"127.0.0.1:{PORT}"
BASE = f"https://{HOST}"
RESOURCE = "https://vault.azure.net"
SCOPE = RESOURCE + "/.default"
LOCK = threading.Lock()

with open(SEED) as f:
    SEEDED = json.load(f)
TENANT = SEEDED["tenant"]
# Tokens issued here, plus any the seed names (the Azure CLI's, handed out by `az`).
TOKENS = set(SEEDED.get("static_tokens", []))
STATS_DATA = {"requests": 0, "throttled": 0, "tokens": 0, "challenges": 0, "forbidden": 0,
              "creates": 0, "paths": []}
STATE = {"control_raw": None, "throttle_left": 0}


def now():
    return int(time.time())


def der_facts(der):
    c = x509.load_der_x509_certificate(der)
    nbf = int(c.not_valid_before_utc.timestamp())
    exp = int(c.not_valid_after_utc.timestamp())
    x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).decode().rstrip("=")
    return nbf, exp, x5t


CERTS = {}
for c in SEEDED["certificates"]:
    versions = []
    for v in c["versions"]:
        der = base64.b64decode(v["der_b64"])
        versions.append({"version": v["version"], "der": der,
                         "enabled": v.get("enabled", True),
                         "created": v.get("created", now() - 86400)})
    CERTS[c["name"]] = {"policy": c["policy"], "versions": versions,
                        "pending": c.get("pending"), "polls": 0, "tags": c.get("tags", {})}


def control():
    try:
        with open(CONTROL) as f:
            raw = f.read()
    except FileNotFoundError:
        raw = "{}"
    with LOCK:
        if raw != STATE["control_raw"]:
            STATE["control_raw"] = raw
            STATE["throttle_left"] = json.loads(raw or "{}").get("throttle", 0)
    return json.loads(raw or "{}")


def save_stats():
    tmp = STATS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATS_DATA, f)
    os.replace(tmp, STATS)


def attributes(v):
    nbf, exp, _ = der_facts(v["der"])
    return {"enabled": v["enabled"], "nbf": nbf, "exp": exp, "created": v["created"],
            "updated": v["created"], "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90}


def policy_json(name, c):
    p = dict(c["policy"])
    p["id"] = f"{BASE}/certificates/{name}/policy"
    p.setdefault("attributes", {"enabled": True, "created": now() - 86400, "updated": now() - 86400})
    return p


def bundle(name, c, v, ctl):
    _, _, x5t = der_facts(v["der"])
    cer = base64.b64encode(v["der"]).decode()
    if name in ctl.get("bad_cer", []):
        cer = base64.b64encode(b"\x30\x03not a certificate").decode()
    b = {"id": f"{BASE}/certificates/{name}/{v['version']}",
         "kid": f"{BASE}/keys/{name}/{v['version']}",
         "sid": f"{BASE}/secrets/{name}/{v['version']}",
         "x5t": x5t, "cer": cer, "attributes": attributes(v),
         "policy": policy_json(name, c), "tags": c["tags"]}
    if c["pending"] and c["pending"]["status"] == "inProgress":
        b["pending"] = {"id": f"{BASE}/certificates/{name}/pending"}
    return b


def issue(name, c):
    """A new self-signed version from the policy (Key Vault's `Self` issuer)."""
    p = c["policy"]
    kp = p.get("key_props", {})
    if kp.get("kty", "RSA").startswith("EC"):
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=kp.get("key_size", 2048))
    xp = p.get("x509_props", {})
    cn = xp.get("subject", f"CN={name}").split("CN=", 1)[-1].split(",")[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    months = xp.get("validity_months", 12)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=30 * months)))
    dns = xp.get("sans", {}).get("dns_names", [])
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), False)
    der = b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    c["versions"].append({"version": secrets.token_hex(16), "der": der, "enabled": True,
                          "created": now()})


def operation(name, c):
    op = dict(c["pending"])
    op["id"] = f"{BASE}/certificates/{name}/pending"
    return op


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send_json(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-keyvault-service-version", "1.9.0.0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def kv_error(self, code, err, message, inner=None, headers=None):
        e = {"code": err, "message": message}
        if inner:
            e["innererror"] = {"code": inner}
        self.send_json(code, {"error": e}, headers)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def route(self, method):
        body = self.body()
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        parts = [p for p in url.path.split("/") if p]
        ctl = control()
        with LOCK:
            STATS_DATA["requests"] += 1
            STATS_DATA["paths"].append(f"{method} {url.path}")
            save_stats()
        if ctl.get("delay"):
            time.sleep(ctl["delay"])
        # Entra ID.
        if len(parts) >= 2 and parts[0] == TENANT and parts[1] == "v2.0":
            a = f"{BASE}/{TENANT}"
            return self.send_json(200, {
                "token_endpoint": f"{a}/oauth2/v2.0/token",
                "authorization_endpoint": f"{a}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{a}/oauth2/v2.0/devicecode",
                "issuer": f"{a}/v2.0", "jwks_uri": f"{a}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "response_types_supported": ["code", "id_token", "token"],
                "tenant_region_scope": "EU"})
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"] and method == "POST":
            return self.token(parts[0], dict(urllib.parse.parse_qsl(body.decode())), ctl)
        if not parts or parts[0] != "certificates":
            return self.kv_error(404, "NotFound", "no such path")
        if "api-version" not in q:
            return self.kv_error(400, "BadParameter", "The 'api-version' query parameter is required.")
        # Bearer challenge.
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            with LOCK:
                STATS_DATA["challenges"] += 1
            return self.kv_error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.",
                                 headers={"WWW-Authenticate":
                                          f'Bearer authorization="{BASE}/{TENANT}", resource="{RESOURCE}"'})
        if auth[7:] not in TOKENS or ctl.get("reject_tokens"):
            return self.kv_error(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/" + TENANT + "/.",
                                 headers={"WWW-Authenticate":
                                          f'Bearer authorization="{BASE}/{TENANT}", resource="{RESOURCE}"'})
        with LOCK:
            if STATE["throttle_left"] > 0:
                STATE["throttle_left"] -= 1
                STATS_DATA["throttled"] += 1
                save_stats()
                return self.kv_error(429, "Throttled",
                                     "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                                     headers={"Retry-After": str(ctl.get("retry_after", 1))})
        op = self.op_of(method, parts)
        if op in ctl.get("forbid", []):
            with LOCK:
                STATS_DATA["forbidden"] += 1
            return self.kv_error(403, "Forbidden",
                                 f"The user, group or application 'appid={SEEDED['client_id']};oid=00000000-0000-0000-0000-000000000001;iss=https://sts.windows.net/{TENANT}/' does not have certificates {op} permission on key vault 'certdeck-test;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                                 inner="AccessDenied")
        with LOCK:
            return self.vault(method, parts, q, body, ctl)

    @staticmethod
    def op_of(method, parts):
        if len(parts) == 1 or (len(parts) == 3 and parts[2] == "versions"):
            return "list"
        if method == "POST":
            return "create"
        return "get"

    def token(self, tenant, form, ctl):
        if tenant != TENANT:
            return self.send_json(400, {"error": "invalid_request", "error_codes": [90002],
                                        "error_description": f"AADSTS90002: Tenant '{tenant}' not found."})
        if form.get("client_id") != SEEDED["client_id"]:
            return self.send_json(400, {"error": "unauthorized_client", "error_codes": [700016],
                                        "error_description": f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory."})
        ok = False
        if "client_secret" in form:
            ok = form["client_secret"] == SEEDED["client_secret"]
        elif form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            ok = form.get("client_assertion") == SEEDED.get("federated_token")
        if not ok or ctl.get("deny_token"):
            return self.send_json(401, {"error": "invalid_client", "error_codes": [7000215],
                                        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."})
        if form.get("scope") != SCOPE:
            return self.send_json(400, {"error": "invalid_scope", "error_codes": [70011],
                                        "error_description": f"AADSTS70011: The provided value for scope {form.get('scope')} is not valid."})
        tok = "kvtok-" + secrets.token_hex(16)
        with LOCK:
            TOKENS.add(tok)
            STATS_DATA["tokens"] += 1
            save_stats()
        return self.send_json(200, {"token_type": "Bearer", "expires_in": 3599,
                                    "ext_expires_in": 3599, "access_token": tok})

    def page(self, items, q, path, ctl):
        size = int(q.get("maxresults") or ctl.get("page_size", 25))
        size = min(size, ctl.get("page_size", 25))
        skip = int(q.get("$skiptoken") or 0)
        chunk = items[skip:skip + size]
        page_no = skip // size + 1 if size else 1
        if path == "/certificates" and ctl.get("fail_page") == page_no:
            return self.kv_error(500, "InternalServerError", "An unexpected error occurred.")
        nxt = None
        if skip + size < len(items):
            nq = {"api-version": q["api-version"], "$skiptoken": str(skip + size), "maxresults": str(size)}
            if "includePending" in q:
                nq["includePending"] = q["includePending"]
            nxt = f"{BASE}{path}?" + urllib.parse.urlencode(nq)
        return self.send_json(200, {"value": chunk, "nextLink": nxt})

    def vault(self, method, parts, q, body, ctl):
        if len(parts) == 1 and method == "GET":
            items = []
            for name, c in sorted(CERTS.items()):
                if not c["versions"]:
                    if q.get("includePending") == "true":
                        items.append({"id": f"{BASE}/certificates/{name}", "attributes": {}, "tags": c["tags"]})
                    continue
                v = c["versions"][-1]
                items.append({"id": f"{BASE}/certificates/{name}", "x5t": der_facts(v["der"])[2],
                              "attributes": attributes(v), "tags": c["tags"]})
            return self.page(items, q, "/certificates", ctl)
        name = parts[1]
        c = CERTS.get(name)
        if c is None:
            return self.kv_error(404, "CertificateNotFound",
                                 f"A certificate with (name/id) {name} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
        rest = parts[2:]
        if rest == ["versions"] and method == "GET":
            items = [{"id": f"{BASE}/certificates/{name}/{v['version']}",
                      "x5t": der_facts(v["der"])[2], "attributes": attributes(v)}
                     for v in c["versions"]]
            return self.page(items, q, f"/certificates/{name}/versions", ctl)
        if rest == ["policy"] and method == "GET":
            return self.send_json(200, policy_json(name, c))
        if rest == ["pending"] and method == "GET":
            if not c["pending"]:
                return self.kv_error(404, "PendingCertificateNotFound", f"Pending certificate not found: {name}")
            p = c["pending"]
            if p["status"] == "inProgress" and p.get("_live"):
                c["polls"] += 1
                if c["polls"] >= ctl.get("pending_polls", 1):
                    if ctl.get("create_fails"):
                        p.update({"status": "failed", "status_details": "The certificate could not be issued.",
                                  "error": {"code": "CertificateOperationFailed",
                                            "message": "Issuer 'Self' could not issue: key generation failed"}})
                    else:
                        issue(name, c)
                        p.update({"status": "completed", "status_details": None,
                                  "target": f"{BASE}/certificates/{name}"})
            op = {k: v for k, v in operation(name, c).items() if not k.startswith("_") and v is not None}
            return self.send_json(200, op, {"Retry-After": "1"} if op["status"] == "inProgress" else None)
        if rest == ["create"] and method == "POST":
            req = json.loads(body or b"{}")
            if req.get("policy"):
                c["policy"] = {k: v for k, v in req["policy"].items() if k != "id"}
            STATS_DATA["creates"] += 1
            STATS_DATA.setdefault("create_bodies", []).append(req)
            save_stats()
            c["polls"] = 0
            c["pending"] = {"issuer": c["policy"].get("issuer", {"name": "Self"}),
                            "csr": base64.b64encode(b"csr-" + name.encode()).decode(),
                            "cancellation_requested": False, "status": "inProgress",
                            "status_details": "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later.",
                            "request_id": secrets.token_hex(16), "_live": True}
            op = {k: v for k, v in operation(name, c).items() if not k.startswith("_")}
            return self.send_json(202, op, {
                "Location": f"{BASE}/certificates/{name}/pending?api-version={q['api-version']}&request_id={c['pending']['request_id']}",
                "Retry-After": "1"})
        if method == "GET" and len(rest) <= 1:
            want = rest[0] if rest and rest[0] else None
            if not c["versions"]:
                return self.kv_error(404, "CertificateNotFound", f"A certificate with (name/id) {name} was not found in this key vault.")
            if want is None:
                v = c["versions"][-1]
            else:
                v = next((x for x in c["versions"] if x["version"] == want), None)
                if v is None:
                    return self.kv_error(404, "CertificateNotFound",
                                         f"A certificate with (name/id) {name}/{want} was not found in this key vault.")
            return self.send_json(200, bundle(name, c, v, ctl))
        return self.kv_error(405, "MethodNotAllowed", "not supported by the fixture")


def main():
    srv = ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    save_stats()
    srv.serve_forever()


if __name__ == "__main__":
    main()
