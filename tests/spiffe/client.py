"""The official py-spiffe client reading the test agent, for cross-checks with certdeck.

Usage: client.py SOCKET            fetch_x509_context: {"svids": [{id, serial}],
                                   "bundles": {trust domain: [serials]}} as JSON
       client.py SOCKET --raw      FetchX509SVID through the generated stub WITHOUT the
                                   `workload.spiffe.io` metadata: prints the gRPC status
Serials are lowercase hex without leading zeros.
"""
import json
import sys

import grpc

socket = sys.argv[1]
if len(sys.argv) > 2 and sys.argv[2] == "--raw":
    from spiffe._proto import workload_pb2, workload_pb2_grpc
    channel = grpc.insecure_channel("unix:" + socket)
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
    try:
        next(iter(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=10)))
        print(json.dumps({"code": "OK"}))
    except grpc.RpcError as e:
        print(json.dumps({"code": e.code().name, "details": e.details()}))
    sys.exit(0)

from spiffe import WorkloadApiClient

with WorkloadApiClient("unix:" + socket) as client:
    ctx = client.fetch_x509_context(timeout=10)
    out = {
        "svids": [{"id": str(s.spiffe_id), "serial": format(s.leaf.serial_number, "x")}
                  for s in ctx.x509_svids],
        "bundles": {
            b.trust_domain.name: sorted(format(c.serial_number, "x") for c in b.x509_authorities)
            for b in ctx.x509_bundle_set.bundles
        },
    }
print(json.dumps(out))
