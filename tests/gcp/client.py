"""The official Python client (google-cloud-certificate-manager + google-auth) reading the
fixture, to prove it faithful: it finds credentials by Application Default Credentials
(GOOGLE_APPLICATION_CREDENTIALS), speaks REST to the endpoint given, pages through every
location given, and prints what it saw as JSON.
Usage: client.py ENDPOINT PROJECT LOCATION...
"""
import json
import os
import sys
import warnings

warnings.simplefilter("ignore")

import google.auth
from google.api_core.client_options import ClientOptions
from google.cloud import certificate_manager_v1 as cm


def main():
    endpoint, project, locations = sys.argv[1], sys.argv[2], sys.argv[3:]
    creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    # google-auth always sends authorized users to oauth2.googleapis.com (it overrides the
    # file's token_uri); point it at the fixture's token endpoint as the file says.
    with open(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]) as f:
        info = json.load(f)
    if info.get("type") == "authorized_user" and info.get("token_uri"):
        creds = creds.with_token_uri(info["token_uri"])
    client = cm.CertificateManagerClient(
        credentials=creds, transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
    )
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
