"""The official Python client (google-cloud-certificate-manager + google-auth) reading the
fixture, to prove it faithful: it finds credentials by Application Default Credentials
(GOOGLE_APPLICATION_CREDENTIALS), speaks REST to the endpoint given, pages through every
location given, and prints what it saw as JSON.
Usage: client.py ENDPOINT PROJECT LOCATION...
       client.py update ENDPOINT NAME CERT_FILE KEY_FILE
The update drives certificates.patch (updateMask selfManaged) as gcloud's `certificates update
--certificate-file --private-key-file` does, waits for the long-running operation, reads the
certificate back, and prints what it saw (never the key).
"""
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")

import google.auth
from google.api_core.client_options import ClientOptions
from google.cloud import certificate_manager_v1 as cm


def credentials():
    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    # google-auth always sends authorized users to oauth2.googleapis.com (it overrides the
    # file's token_uri); point it at the fixture's token endpoint as the file says.
    with open(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]) as f:
        info = json.load(f)
    if info.get("type") == "authorized_user" and info.get("token_uri"):
        creds = creds.with_token_uri(info["token_uri"])
    return creds


def client_for(endpoint):
    return cm.CertificateManagerClient(
        credentials=credentials(), transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
    )


def update(endpoint, name, cert_file, key_file):
    import hashlib
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from google.api_core import exceptions
    from google.protobuf import field_mask_pb2

    client = client_for(endpoint)
    with open(cert_file) as f:
        pem = f.read()
    with open(key_file) as f:
        key = f.read()
    cert = cm.Certificate(
        name=name,
        self_managed=cm.Certificate.SelfManagedCertificate(pem_certificate=pem, pem_private_key=key),
    )
    out = {}
    try:
        op = client.update_certificate(
            certificate=cert, update_mask=field_mask_pb2.FieldMask(paths=["self_managed"])
        )
        out["operation"] = op.operation.name
        done = op.result(timeout=60)
        out["result_name"] = done.name
    except exceptions.GoogleAPICallError as e:
        out["error"] = {"code": e.code.value if hasattr(e.code, "value") else e.code, "message": e.message}
    except Exception as e:  # the operation ended with an error
        out["error"] = {"code": None, "message": str(e)}
    got = client.get_certificate(name=name)
    leaf = x509.load_pem_x509_certificates(got.pem_certificate.encode())[0]
    out["sha256"] = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    out["expire_time"] = got.expire_time.isoformat()
    out["san_dnsnames"] = list(got.san_dnsnames)
    print(json.dumps(out))


def main():
    if sys.argv[1] == "update":
        return update(*sys.argv[2:6])
    endpoint, project, locations = sys.argv[1], sys.argv[2], sys.argv[3:]
    client = client_for(endpoint)
    out = []
    pages = 0
    for loc in locations:
        parent = "projects/%s/locations/%s" % (project, loc)
        pager = client.list_certificates(request={"parent": parent, "page_size": 2})
        for page in pager.pages:
            pages += 1
            for c in page.certificates:
                row = {
                    "name": c.name,
                    "san_dnsnames": list(c.san_dnsnames),
                    "expire_time": c.expire_time.isoformat() if c.expire_time else None,
                    "used_by": [u.name for u in c.used_by],
                    "has_pem": bool(c.pem_certificate),
                }
                if "managed" in c:
                    m = c.managed
                    row["state"] = m.state.name
                    if "provisioning_issue" in m:
                        row["issue"] = m.provisioning_issue.reason.name
                    row["authorizations"] = [
                        {"domain": a.domain, "state": a.state.name, "failure_reason": a.failure_reason.name}
                        for a in m.authorization_attempt_info
                    ]
                out.append(row)
    print(json.dumps({"certificates": out, "pages": pages}))


if __name__ == "__main__":
    main()
