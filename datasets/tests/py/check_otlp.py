"""Parses a scenario's traces.pb (length-delimited ExportTraceServiceRequests) with the
OpenTelemetry Python protobuf classes and prints a JSON summary; exits non-zero on error."""
import json
import sys

from google.protobuf.internal.decoder import _DecodeVarint32
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def main(path):
    data = open(path, "rb").read()
    pos, requests, spans, services = 0, 0, 0, set()
    while pos < len(data):
        size, pos = _DecodeVarint32(data, pos)
        req = ExportTraceServiceRequest()
        req.ParseFromString(data[pos:pos + size])
        pos += size
        requests += 1
        for rs in req.resource_spans:
            for a in rs.resource.attributes:
                if a.key == "service.name":
                    services.add(a.value.string_value)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    assert len(s.trace_id) == 16 and len(s.span_id) == 8, s
                    spans += 1
    print(json.dumps({"requests": requests, "spans": spans, "services": sorted(services)}))


if __name__ == "__main__":
    main(sys.argv[1])
