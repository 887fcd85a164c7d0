"""A loopback fixture of Google Certificate Manager's v1 REST API, for certdeck's tests.

No emulator of Certificate Manager exists, so this follows the REST reference:
  GET   /v1/projects/P/locations                         locations.list (pageToken/nextPageToken)
  GET   /v1/projects/P/locations/L/certificates          certificates.list (pageSize, pageToken)
  GET   /v1/projects/P/locations/L/certificates/N        certificates.get
  PATCH /v1/projects/P/locations/L/certificates/N?updateMask=selfManaged   certificates.patch
        (body: a Certificate with selfManaged.pemCertificate/pemPrivateKey) -> an Operation,
        not done yet; the key must match the certificate (400 INVALID_ARGUMENT otherwise)
  GET   /v1/projects/P/locations/L/operations/O          operations.get: done after
        `op_polls` reads, with `response` (the updated Certificate) or `error` (a Status)
  POST  /token                                           OAuth 2.0 token endpoint (refresh_token grant)
Enums are strings, or ints with `$alt=json;enum-encoding=int` (as the official client asks).
Errors are google.rpc.Status JSON ({"error": {code, message, status, details}}), 403 with a
google.rpc.ErrorInfo naming the permission, 429 with Retry-After.

Bearer tokens accepted: ones this token endpoint issued, or a self-signed service-account
JWT (the flow google-cloud-auth and google-auth use) whose `iss` is a known client email.

Test control (not part of the API): POST /_seed {"certificates": [...]} stores certificates
(their full REST shape, enums as strings, `selfManaged` input turned into pemCertificate),
POST /_control sets faults, GET /_stats returns counters.
Usage: fixture.py PORT
"""
import base64
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

LOCK = threading.Lock()
CERTS = {}  # name -> dict (REST shape, enums as strings)
LOCATIONS = {}  # project -> [location ids]
CONTROL = {
    "page_cap": None,         # max certificates per page whatever pageSize asks
    "deny": [],               # resources (parents) answered 403
    "throttle": 0,            # the next N API calls get 429 with Retry-After: 1
    "fail_page": None,        # {"parent": ..., "page": k} -> that page answers 500
    "slow": 0,                # seconds to sleep before answering API calls
    "emails": [],             # service-account emails whose self-signed JWTs are accepted
    "refresh_tokens": [],     # refresh tokens the token endpoint exchanges
    "broken_pem": [],         # certificate names whose pemCertificate is garbage
    "deny_update": [],        # parents whose certificates.patch answers 403 (reads still work)
    "op_polls": 0,            # operations.get answers "not done" this many times first
    "op_error": None,         # {"code", "message"}: the next operations end with this error
}
TOKENS = set()
STATS = {"int_enums": 0, "requests": 0, "throttled": 0, "tokens": 0, "list_calls": 0, "page_sizes": [], "auth": [],
         "patches": [], "operation_gets": 0}
OPS = {}
PENDING = {}  # operation name -> what it does when it completes
SEQ = [0]

ENUMS = {
    ("scope",): {"DEFAULT": 0, "EDGE_CACHE": 1, "ALL_REGIONS": 2, "CLIENT_AUTH": 3},
    ("managed", "state"): {"STATE_UNSPECIFIED": 0, "PROVISIONING": 1, "FAILED": 2, "ACTIVE": 3},
    ("managed", "provisioningIssue", "reason"): {"REASON_UNSPECIFIED": 0, "AUTHORIZATION_ISSUE": 1, "RATE_LIMITED": 2},
    ("managed", "authorizationAttemptInfo", "state"): {"STATE_UNSPECIFIED": 0, "AUTHORIZING": 1, "AUTHORIZED": 6, "FAILED": 7},
    ("managed", "authorizationAttemptInfo", "failureReason"): {"FAILURE_REASON_UNSPECIFIED": 0, "CONFIG": 1, "CAA": 2, "RATE_LIMITED": 3},
}


def int_enums(cert):
    c = json.loads(json.dumps(cert))
    if "scope" in c:
        c["scope"] = ENUMS[("scope",)].get(c["scope"], 0)
    m = c.get("managed")
    if m:
        if "state" in m:
            m["state"] = ENUMS[("managed", "state")].get(m["state"], 0)
        pi = m.get("provisioningIssue")
        if pi and "reason" in pi:
            pi["reason"] = ENUMS[("managed", "provisioningIssue", "reason")].get(pi["reason"], 0)
        for a in m.get("authorizationAttemptInfo", []):
            if "state" in a:
                a["state"] = ENUMS[("managed", "authorizationAttemptInfo", "state")].get(a["state"], 0)
            if "failureReason" in a:
                a["failureReason"] = ENUMS[("managed", "authorizationAttemptInfo", "failureReason")].get(a["failureReason"], 0)
    return c


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def pem_facts(pem):
    """expireTime and sanDnsnames of the leaf, as the real API derives them from the PEM."""
    from cryptography import x509
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        sans = []
    return leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"), sans


def store(cert):
    c = dict(cert)
    sm = c.pop("selfManaged", None)
    if sm:
        c["pemCertificate"] = sm.get("pemCertificate", "")
        c["expireTime"], c["sanDnsnames"] = pem_facts(c["pemCertificate"])
    c.setdefault("createTime", now_rfc3339())
    c.setdefault("updateTime", c["createTime"])
    c.setdefault("scope", "DEFAULT")
    CERTS[c["name"]] = c
    proj, loc = c["name"].split("/")[1], c["name"].split("/")[3]
    LOCATIONS.setdefault(proj, [])
    if loc not in LOCATIONS[proj]:
        LOCATIONS[proj].append(loc)


def status_error(code, status, message, details=None):
    body = {"error": {"code": code, "message": message, "status": status}}
    if details:
        body["error"]["details"] = details
    return code, body


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def authorized(header):
    if not header.startswith("Bearer "):
        return False, "none"
    tok = header[len("Bearer "):]
    if tok in TOKENS:
        return True, "token"
    parts = tok.split(".")
    if len(parts) == 3:
        try:
            payload = json.loads(b64url(parts[1]))
        except Exception:
            return False, "bad-jwt"
        if payload.get("iss") in CONTROL["emails"] and payload.get("exp", 0) > time.time():
            return True, "jwt"
    return False, "unknown"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def route(self, method):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        raw = self.body()
        path = u.path
        if path == "/_seed" and method == "POST":
            with LOCK:
                for c in json.loads(raw).get("certificates", []):
                    store(c)
                for p, locs in json.loads(raw).get("locations", {}).items():
                    LOCATIONS[p] = locs
            return self.reply(200, {"ok": True})
        if path == "/_control" and method == "POST":
            with LOCK:
                CONTROL.update(json.loads(raw))
            return self.reply(200, CONTROL)
        if path == "/_stats":
            with LOCK:
                return self.reply(200, STATS)
        if path == "/token" and method == "POST":
            # Form-encoded (google-auth) or JSON (google-cloud-auth): Google's endpoint takes both.
            if "json" in (self.headers.get("Content-Type") or ""):
                form = {k: [v] for k, v in json.loads(raw or b"{}").items()}
            else:
                form = parse_qs(raw.decode())
            with LOCK:
                if form.get("grant_type", [""])[0] == "refresh_token" and form.get("refresh_token", [""])[0] in CONTROL["refresh_tokens"]:
                    SEQ[0] += 1
                    tok = "ya29.fixture-%d-%s" % (SEQ[0], "x" * 40)
                    TOKENS.add(tok)
                    STATS["tokens"] += 1
                    return self.reply(200, {"access_token": tok, "expires_in": 3599, "token_type": "Bearer", "scope": "https://www.googleapis.com/auth/cloud-platform"})
            return self.reply(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        if not path.startswith("/v1/"):
            return self.reply(404, status_error(404, "NOT_FOUND", "not found")[1])
        with LOCK:
            STATS["requests"] += 1
            ok, how = authorized(self.headers.get("Authorization", ""))
            STATS["auth"].append(how)
            slow = CONTROL["slow"]
        if slow:
            time.sleep(slow)
        if not ok:
            code, b = status_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
            return self.reply(code, b, {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        with LOCK:
            if CONTROL["throttle"] > 0:
                CONTROL["throttle"] -= 1
                STATS["throttled"] += 1
                code, b = status_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'certificatemanager.googleapis.com'.")
                return self.reply(code, b, {"Retry-After": "1"})
        ints = "enum-encoding=int" in (q.get("$alt", [""])[0])
        if ints:
            with LOCK:
                STATS["int_enums"] += 1
        res = path[len("/v1/"):]
        m = re.fullmatch(r"projects/([^/]+)/locations", res)
        if m and method == "GET":
            return self.list_locations(m.group(1), q)
        m = re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/certificates", res)
        if m and method == "GET":
            return self.list_certs(m.group(1), q, ints)
        m = re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/certificates/[^/]+", res)
        if m:
            if self.denied(m.group(1), "certificatemanager.certs.get" if method == "GET" else "certificatemanager.certs.update"):
                return
            with LOCK:
                c = CERTS.get(res)
            if c is None:
                return self.reply(*status_error(404, "NOT_FOUND", "Resource '%s' was not found" % res))
            if method == "GET":
                return self.reply(200, self.render(c, ints))
            if method == "PATCH":
                return self.patch(res, c, q, raw)
        m = re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/operations/[^/]+", res)
        if m and method == "GET":
            if self.denied(m.group(1), "certificatemanager.operations.get"):
                return
            return self.get_operation(res)
        return self.reply(*status_error(404, "NOT_FOUND", "Method not found."))

    def denied(self, parent, permission):
        with LOCK:
            deny = any(parent == d or parent.startswith(d + "/") for d in CONTROL["deny"])
        if deny:
            self.forbid(parent, permission)
            return True
        return False

    def render(self, c, ints):
        out = dict(c)
        if c["name"] in CONTROL["broken_pem"]:
            out["pemCertificate"] = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
        return int_enums(out) if ints else out

    def list_locations(self, project, q):
        if self.denied("projects/" + project, "certificatemanager.locations.list"):
            return
        with LOCK:
            locs = list(LOCATIONS.get(project, ["global"]))
        start = int(q.get("pageToken", ["0"])[0] or 0)
        size = 2
        page = locs[start:start + size]
        body = {"locations": [{"name": "projects/%s/locations/%s" % (project, l), "locationId": l} for l in page]}
        if start + size < len(locs):
            body["nextPageToken"] = str(start + size)
        return self.reply(200, body)

    def list_certs(self, parent, q, ints):
        if self.denied(parent, "certificatemanager.certs.list"):
            return
        size = int(q.get("pageSize", ["0"])[0] or 0) or 50
        with LOCK:
            STATS["list_calls"] += 1
            STATS["page_sizes"].append(size)
            cap = CONTROL["page_cap"]
            fail = CONTROL["fail_page"]
            items = sorted((c for n, c in CERTS.items() if n.startswith(parent + "/certificates/")), key=lambda c: c["name"])
        if cap:
            size = min(size, cap)
        token = q.get("pageToken", [""])[0]
        if token and not token.startswith("p"):
            return self.reply(*status_error(400, "INVALID_ARGUMENT", "The page token is not valid."))
        start = int(token[1:]) if token else 0
        page_no = start // size + 1 if size else 1
        if fail and fail.get("parent") == parent and fail.get("page") == page_no:
            return self.reply(*status_error(500, "INTERNAL", "Internal error encountered."))
        page = items[start:start + size]
        body = {"certificates": [self.render(c, ints) for c in page]}
        if start + size < len(items):
            body["nextPageToken"] = "p%d" % (start + size)
        return self.reply(200, body)

    def patch(self, name, c, q, raw):
        # updateMask is a FieldMask: comma-separated paths, camelCase in JSON (the official
        # client sends `selfManaged`), snake_case accepted as the API does.
        paths = [p.strip() for p in q.get("updateMask", [""])[0].split(",") if p.strip()]
        paths = [{"self_managed": "selfManaged"}.get(p, p) for p in paths]
        try:
            patch = json.loads(raw or b"{}")
        except ValueError:
            return self.reply(*status_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        sm = patch.get("selfManaged") or {}
        with LOCK:
            STATS["patches"].append({
                "name": name, "mask": paths, "body_keys": sorted(patch.keys()),
                "self_managed_keys": sorted(sm.keys()),
                "auth": STATS["auth"][-1] if STATS["auth"] else None})
            deny = any(name.startswith(d + "/") for d in CONTROL["deny_update"])
        if deny:
            parent = "/".join(name.split("/")[:4])
            self.forbid(parent, "certificatemanager.certs.update")
            return
        if not paths:
            return self.reply(*status_error(400, "INVALID_ARGUMENT", "Field 'update_mask' is required."))
        unknown = [p for p in paths if p not in ("selfManaged", "description", "labels")]
        if unknown:
            return self.reply(*status_error(400, "INVALID_ARGUMENT", "Invalid update mask path: %s" % unknown[0]))
        if "managed" in c and "selfManaged" in paths:
            return self.reply(*status_error(400, "INVALID_ARGUMENT", "Cannot update the certificate and key of a Google-managed certificate."))
        nc = dict(c)
        if "selfManaged" in paths:
            pem, key = sm.get("pemCertificate", ""), sm.get("pemPrivateKey", "")
            why = pem_key_problem(pem, key)
            if why:
                return self.reply(*status_error(400, "INVALID_ARGUMENT", why))
            nc["pemCertificate"] = pem
            nc["expireTime"], nc["sanDnsnames"] = pem_facts(pem)
        if "description" in paths:
            nc["description"] = patch.get("description", "")
        if "labels" in paths:
            nc["labels"] = patch.get("labels", {})
        with LOCK:
            SEQ[0] += 1
            parent = "/".join(name.split("/")[:4])
            op_name = "%s/operations/operation-%d-%s" % (parent, SEQ[0], "5e7a9c0d")
            meta = {"@type": "type.googleapis.com/google.cloud.certificatemanager.v1.OperationMetadata",
                    "createTime": now_rfc3339(), "target": name, "verb": "update", "apiVersion": "v1"}
            # A long-running operation: not done when the PATCH answers; done after
            # `op_polls` operations.get calls, with the certificate updated only then (or an
            # error, the certificate untouched, when `op_error` is set).
            OPS[op_name] = {"name": op_name, "done": False, "metadata": meta}
            PENDING[op_name] = {"polls": CONTROL["op_polls"], "target": name, "cert": nc,
                                "error": CONTROL["op_error"]}
            return self.reply(200, OPS[op_name])

    def forbid(self, parent, permission):
        self.reply(*status_error(
            403, "PERMISSION_DENIED",
            "Permission '%s' denied on resource '//certificatemanager.googleapis.com/%s' (or it may not exist)." % (permission, parent),
            [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
              "domain": "certificatemanager.googleapis.com",
              "metadata": {"permission": permission, "resource": parent}}]))

    def get_operation(self, res):
        with LOCK:
            STATS["operation_gets"] += 1
            op = OPS.get(res)
            p = PENDING.get(res)
            if op is not None and p is not None:
                if p["polls"] > 0:
                    p["polls"] -= 1
                else:
                    del PENDING[res]
                    op = dict(op)
                    op["metadata"] = dict(op["metadata"], endTime=now_rfc3339())
                    op["done"] = True
                    if p["error"]:
                        op["error"] = {"code": p["error"].get("code", 3), "message": p["error"].get("message", "failed")}
                    else:
                        nc = dict(p["cert"])
                        nc["updateTime"] = now_rfc3339()
                        CERTS[p["target"]] = nc
                        op["response"] = dict(nc, **{"@type": "type.googleapis.com/google.cloud.certificatemanager.v1.Certificate"})
                    OPS[res] = op
        if op is None:
            return self.reply(*status_error(404, "NOT_FOUND", "Resource '%s' was not found" % res))
        return self.reply(200, op)


def pem_key_problem(pem, key):
    """Why Certificate Manager would refuse this certificate and key, or None."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    if "BEGIN CERTIFICATE" not in pem or "PRIVATE KEY" not in key:
        return "Invalid certificate or private key."
    try:
        leaf = x509.load_pem_x509_certificates(pem.encode())[0]
        k = serialization.load_pem_private_key(key.encode(), password=None)
    except Exception:
        return "Invalid certificate or private key."
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*fmt) != k.public_key().public_bytes(*fmt):
        return "The private key does not match the certificate."
    return None


def main():
    port = int(sys.argv[1])
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


if __name__ == "__main__":
    main()
