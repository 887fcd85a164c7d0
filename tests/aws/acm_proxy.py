#!/usr/bin/env python3
"""A thin loopback fixture in front of moto's server, adding what moto lacks and faults.

Every request is forwarded to moto unchanged (so moto's signature checks still apply); the
fixture only rewrites some answers:

- ListCertificates is paged (``NextToken`` / ``MaxItems``, at most ``page_cap`` per page), and
  without ``Includes.keyTypes`` only RSA_2048 certificates are listed, as ACM does.
- ``overlay``: fields merged into DescribeCertificate's ``Certificate`` and into the
  ListCertificates summary of an ARN (Type, RenewalEligibility, RenewalSummary, InUseBy...).
- RenewCertificate (moto answers HTTP 500): for an ARN in ``renewable``, the renewed
  certificate given there is imported into moto under the same ARN, RenewalSummary becomes
  SUCCESS and the answer is ACM's empty ``{}``; other ARNs get ACM's ValidationException.
- ``faults``: per operation (and optionally per ARN, or only on follow-up pages), an HTTP
  status with an error body, a raw body, or a delay, for ``times`` requests (or always).

The state is a JSON file re-read when it changes. ``GET /__stats`` returns counts per
operation and the access key ids each operation was signed with (never secrets).

Usage: acm_proxy.py PORT UPSTREAM_PORT STATE_FILE
"""
import base64
import http.client
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, UPSTREAM, STATE_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
LOCK = threading.Lock()
STATE = {"mtime": None, "data": {}}
STATS = {"ops": {}, "key_ids": {}, "list_requests": []}
FAULT_HITS = {}


def state():
    try:
        m = os.stat(STATE_FILE).st_mtime_ns
    except FileNotFoundError:
        return {}
    with LOCK:
        if STATE["mtime"] != m:
            with open(STATE_FILE) as f:
                STATE["data"] = json.load(f)
            STATE["mtime"] = m
            FAULT_HITS.clear()
        return STATE["data"]


def hget(headers, name):
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def operation(headers, body):
    target = hget(headers, "X-Amz-Target")
    if target:
        return target.split(".")[-1]
    m = re.search(rb"(?:^|&)Action=([A-Za-z]+)", body or b"")
    return m.group(1).decode() if m else "unknown"


def key_id(headers):
    m = re.search(r"Credential=([A-Z0-9]+)/", hget(headers, "Authorization") or "")
    return m.group(1) if m else None


def matching_fault(op, req):
    for i, f in enumerate(state().get("faults", [])):
        if f.get("op") != op:
            continue
        if "arn" in f and req.get("CertificateArn") != f["arn"]:
            continue
        if f.get("follow_up_pages") and not req.get("NextToken"):
            continue
        with LOCK:
            n = FAULT_HITS.get(i, 0)
            if f.get("times") is not None and n >= f["times"]:
                continue
            FAULT_HITS[i] = n + 1
        return f
    return None


def upstream(method, path, headers, body):
    c = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
    h = {k: v for k, v in headers.items() if k.lower() not in ("connection", "accept-encoding")}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    out = (r.status, [(k, v) for k, v in r.getheaders()
                      if k.lower() not in ("content-length", "transfer-encoding", "connection")], data)
    c.close()
    return out


def moto_call(region, target, payload):
    """An unsigned call from the fixture itself (moto routes by the credential scope)."""
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": target,
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIAFIXTURE0000000000/20260101/%s/acm/aws4_request, "
                         "SignedHeaders=host, Signature=0" % region,
        "Host": "127.0.0.1:%d" % UPSTREAM,
    }
    return upstream("POST", "/", headers, json.dumps(payload).encode())


def region_of(arn):
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else "us-east-1"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, body, headers=(("Content-Type", "application/x-amz-json-1.1"),)):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/__stats":
            with LOCK:
                self.send(200, json.dumps(STATS), (("Content-Type", "application/json"),))
            return
        self.forward(b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.forward(self.rfile.read(n) if n else b"")

    def do_PUT(self):
        self.do_POST()

    def forward(self, body):
        headers = {k: v for k, v in self.headers.items()}
        op = operation(headers, body)
        try:
            req = json.loads(body) if body and body[:1] == b"{" else {}
        except ValueError:
            req = {}
        with LOCK:
            STATS["ops"][op] = STATS["ops"].get(op, 0) + 1
            kid = key_id(headers)
            if kid:
                ids = STATS["key_ids"].setdefault(op, [])
                if kid not in ids:
                    ids.append(kid)
            if op == "ListCertificates":
                STATS["list_requests"].append({
                    "MaxItems": req.get("MaxItems"),
                    "NextToken": req.get("NextToken"),
                    "keyTypes": (req.get("Includes") or {}).get("keyTypes"),
                    "CertificateStatuses": req.get("CertificateStatuses"),
                })
        fault = matching_fault(op, req)
        if fault:
            if fault.get("delay"):
                time.sleep(fault["delay"])
            if "status" in fault:
                if "body" in fault:
                    body_out = fault["body"]
                else:
                    body_out = json.dumps({"__type": fault.get("code", "InternalFailure"),
                                           "message": fault.get("message", "injected fault")})
                self.send(fault["status"], body_out)
                return
        st = state()
        if op == "RenewCertificate":
            return self.renew(req, st)
        status, rheaders, data = upstream(self.command, self.path, headers, body)
        if status == 200 and op == "ListCertificates":
            data = self.page(json.loads(data), req, st)
        elif status == 200 and op == "DescribeCertificate":
            d = json.loads(data)
            ov = st.get("overlay", {}).get(req.get("CertificateArn"), {})
            d["Certificate"].update(ov)
            data = json.dumps(d).encode()
        self.send(status, data, rheaders)

    def page(self, d, req, st):
        items = d.get("CertificateSummaryList", [])
        if not (req.get("Includes") or {}).get("keyTypes"):
            items = [c for c in items if c.get("KeyAlgorithm") == "RSA_2048"]
        ov = st.get("overlay", {})
        summary_fields = ("Type", "Status", "RenewalEligibility", "NotAfter")
        for c in items:
            o = ov.get(c.get("CertificateArn"), {})
            for k in summary_fields:
                if k in o:
                    c[k] = o[k]
            if "InUseBy" in o:
                c["InUse"] = bool(o["InUseBy"])
        items.sort(key=lambda c: c["CertificateArn"])
        start = 0
        if req.get("NextToken"):
            start = json.loads(base64.b64decode(req["NextToken"]))["offset"]
        size = min(int(req.get("MaxItems") or 1000), int(st.get("page_cap") or 1000))
        chunk = items[start:start + size]
        out = {"CertificateSummaryList": chunk}
        if start + size < len(items):
            out["NextToken"] = base64.b64encode(json.dumps({"offset": start + size}).encode()).decode()
        return json.dumps(out).encode()

    def renew(self, req, st):
        arn = req.get("CertificateArn", "")
        r = st.get("renewable", {}).get(arn)
        if not r:
            self.send(400, json.dumps({"__type": "ValidationException",
                                       "message": "Certificate %s is not eligible for renewal." % arn}))
            return
        with LOCK:
            done = STATE.setdefault("renewed", set())
            already = arn in done
            done.add(arn)
        if not already:
            payload = {"CertificateArn": arn,
                       "Certificate": base64.b64encode(r["cert"].encode()).decode(),
                       "PrivateKey": base64.b64encode(r["key"].encode()).decode()}
            if r.get("chain"):
                payload["CertificateChain"] = base64.b64encode(r["chain"].encode()).decode()
            status, _, data = moto_call(region_of(arn), "CertificateManager.ImportCertificate", payload)
            if status != 200:
                self.send(500, data)
                return
            with LOCK:
                ov = STATE["data"].setdefault("overlay", {}).setdefault(arn, {})
                ov["RenewalSummary"] = {
                    "RenewalStatus": "SUCCESS",
                    "DomainValidationOptions": [],
                    "UpdatedAt": time.time(),
                }
        self.send(200, "{}")


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
