"""Sends one Envoy/Istio access-log line (the Istio default text format) as an OTLP log
record through the real OpenTelemetry Python SDK logs pipeline and OTLP exporter, as
an Envoy OpenTelemetry access logger would: the sidecar's workload in the resource, the
line in the body. Prints {"request_id": ...} as JSON.

    sleep.foo (outbound) --GET /status/418--> httpbin.foo   (418, 4 ms)

usage: emit_access_log.py --protocol grpc|http --endpoint URL
"""

import argparse
import datetime
import json
import uuid

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=endpoint.rstrip("/") + "/v1/logs")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args()

    resource = Resource.create({"service.name": "sleep", "service.namespace": "foo"})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter(args.protocol, args.endpoint)))
    logger = provider.get_logger("envoy.access_loggers.open_telemetry")

    now = datetime.datetime.now(datetime.timezone.utc)
    start = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    request_id = str(uuid.uuid4())
    line = (
        f'[{start}] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" '
        f'"curl/7.73.0-DEV" "{request_id}" "httpbin:8000" "10.44.1.27:80" '
        "outbound|8000||httpbin.foo.svc.cluster.local 10.44.1.23:37652 10.0.45.184:8000 "
        "10.44.1.23:46520 - default"
    )
    logger.emit(timestamp=int(now.timestamp() * 1e9), body=line)
    ok = provider.force_flush(timeout_millis=10_000)
    provider.shutdown()
    if not ok:
        raise SystemExit("export did not finish")
    print(json.dumps({"request_id": request_id}))


if __name__ == "__main__":
    main()
