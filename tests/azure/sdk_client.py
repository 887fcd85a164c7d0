#!/usr/bin/env python3
"""The official Python SDK (azure-identity + azure-keyvault-certificates) driving the fixture,
so the tests can check that the fixture's shapes are the ones the vendor's own client reads,
and that certdeck sees what that client sees.

Environment: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST,
REQUESTS_CA_BUNDLE (the test CA). Usage: sdk_client.py VAULT_URL list | create NAME
Prints JSON on stdout.
"""

import hashlib
import json
import os
import sys

from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.certificates import CertificateClient


def main():
    vault, mode = sys.argv[1], sys.argv[2]
    ca = os.environ["REQUESTS_CA_BUNDLE"]
    cred = ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"],
        os.environ["AZURE_CLIENT_SECRET"], authority=os.environ["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True, connection_verify=ca)
    client = CertificateClient(vault, cred, api_version="7.5",
                               verify_challenge_resource=False, connection_verify=ca)
    if mode == "list":
        out = []
        for props in client.list_properties_of_certificates(include_pending=True):
            try:
                cur = client.get_certificate(props.name)
            except ResourceNotFoundError:
                # Pending creation: no version yet; the operation says so.
                op = client.get_certificate_operation(props.name)
                out.append({"name": props.name, "version": None, "id": props.id,
                            "pending": {"status": op.status}})
                continue
            policy = cur.policy
            try:
                op = client.get_certificate_operation(props.name)
                pending = {"status": op.status, "error": op.error.code if op.error else None}
            except ResourceNotFoundError:
                pending = None
            for v in client.list_properties_of_certificate_versions(props.name):
                full = client.get_certificate_version(props.name, v.version)
                out.append({
                    "name": props.name,
                    "version": v.version,
                    "id": v.id,
                    "current": v.version == cur.properties.version,
                    "enabled": v.enabled,
                    "nbf": int(v.not_before.timestamp()) if v.not_before else None,
                    "exp": int(v.expires_on.timestamp()) if v.expires_on else None,
                    "sha256": hashlib.sha256(bytes(full.cer)).hexdigest(),
                    "issuer": policy.issuer_name,
                    "lifetime_actions": [
                        {"action": str(a.action.value if hasattr(a.action, "value") else a.action),
                         "lifetime_percentage": a.lifetime_percentage,
                         "days_before_expiry": a.days_before_expiry}
                        for a in (policy.lifetime_actions or [])
                    ],
                    "pending": pending,
                })
        print(json.dumps(sorted(out, key=lambda r: (r["name"], r["version"] or ""))))
    elif mode == "create":
        name = sys.argv[3]
        policy = client.get_certificate_policy(name)
        poller = client.begin_create_certificate(name, policy)
        cert = poller.result()
        print(json.dumps({"name": cert.name, "version": cert.properties.version,
                          "sha256": hashlib.sha256(bytes(cert.cer)).hexdigest(),
                          "exp": int(cert.properties.expires_on.timestamp())}))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
