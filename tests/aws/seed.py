#!/usr/bin/env python3
"""Seed moto through boto3 (the vendor's Python SDK), independently of the code under test.

Reads one JSON object on stdin: {"endpoint": URL, "ops": [...]} and prints a JSON list with
one result per op. Ops:
  {"op": "import", "region", "cert", "key", "chain"?, "tags"?: {k: v}}    -> {"arn"}
  {"op": "request", "region", "domain"}                                    -> {"arn"}
  {"op": "generate", "region", "count", "prefix", "days"}                  -> {"arns": [...]}
  {"op": "pca", "region", "cn", "root_cert", "root_key"}                   -> {"arn", "cert"}
  {"op": "pca_pending", "region", "cn"}                                    -> {"arn"}
  {"op": "iam_user", "name", "actions": [...]}                             -> {"key_id", "secret"}
Credentials come from the environment (AWS_ACCESS_KEY_ID...), as the caller sets them.
"""
import datetime
import json
import sys

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

req = json.load(sys.stdin)
endpoint = req["endpoint"]


def client(service, region="us-east-1"):
    return boto3.client(service, region_name=region, endpoint_url=endpoint)


def self_signed(cn, days):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


out = []
for op in req["ops"]:
    kind = op["op"]
    if kind == "import":
        args = {"Certificate": op["cert"].encode(), "PrivateKey": op["key"].encode()}
        if op.get("chain"):
            args["CertificateChain"] = op["chain"].encode()
        if op.get("tags"):
            args["Tags"] = [{"Key": k, "Value": v} for k, v in op["tags"].items()]
        r = client("acm", op["region"]).import_certificate(**args)
        out.append({"arn": r["CertificateArn"]})
    elif kind == "request":
        r = client("acm", op["region"]).request_certificate(
            DomainName=op["domain"], ValidationMethod="DNS")
        out.append({"arn": r["CertificateArn"]})
    elif kind == "generate":
        acm = client("acm", op["region"])
        arns = []
        for i in range(op["count"]):
            c, k = self_signed("%s-%d.example.com" % (op["prefix"], i), op.get("days", 90))
            arns.append(acm.import_certificate(Certificate=c, PrivateKey=k)["CertificateArn"])
        out.append({"arns": arns})
    elif kind in ("pca", "pca_pending"):
        pca = client("acm-pca", op["region"])
        arn = pca.create_certificate_authority(
            CertificateAuthorityConfiguration={
                "KeyAlgorithm": "RSA_2048", "SigningAlgorithm": "SHA256WITHRSA",
                "Subject": {"CommonName": op["cn"]}},
            CertificateAuthorityType="SUBORDINATE" if kind == "pca" else "ROOT",
        )["CertificateAuthorityArn"]
        if kind == "pca_pending":
            out.append({"arn": arn})
            continue
        csr = x509.load_pem_x509_csr(
            pca.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"].encode())
        root = x509.load_pem_x509_certificate(op["root_cert"].encode())
        root_key = serialization.load_pem_private_key(op["root_key"].encode(), None)
        now = datetime.datetime.now(datetime.timezone.utc)
        ca = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(root.subject)
              .public_key(csr.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=op.get("days", 400)))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(root_key, hashes.SHA256()))
        pem = ca.public_bytes(serialization.Encoding.PEM)
        pca.import_certificate_authority_certificate(
            CertificateAuthorityArn=arn, Certificate=pem,
            CertificateChain=op["root_cert"].encode())
        out.append({"arn": arn, "cert": pem.decode()})
    elif kind == "iam_user":
        iam = client("iam")
        iam.create_user(UserName=op["name"])
        key = iam.create_access_key(UserName=op["name"])["AccessKey"]
        iam.put_user_policy(
            UserName=op["name"], PolicyName="certdeck",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": op["actions"], "Resource": "*"}]}))
        out.append({"key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]})
    else:
        raise SystemExit("unknown op %s" % kind)
json.dump(out, sys.stdout)
