"""Emits one small, known trace through the real OpenTelemetry Python SDK and its OTLP
exporter, then prints {"trace_id": ...} as JSON on stdout.

    frontend SERVER  GET /cart
      frontend CLIENT  GET  -> cart (http://cart:8080/api/cart/42)
        cart SERVER  GET /api/cart/{id}
          cart CLIENT  redis GET  (db.system=redis, server.address=redis)

Each service has its own TracerProvider (its own resource, as in real deployments);
context crosses the "network" through W3C traceparent injection and extraction.

With --tick-after SECONDS it then sleeps and sends one more, unrelated root span:
event time moves on, so eastwest's watermark passes the pairing TTL and the redis call
(whose server side is never instrumented) is released as a call to a virtual peer.

usage: emit_trace.py --protocol grpc|http --endpoint URL [--tick-after SECONDS]
"""

import argparse
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


def exporter(protocol, endpoint):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")


def provider(service, protocol, endpoint):
    resource = Resource.create({"service.name": service, "service.namespace": "shop"})
    p = TracerProvider(resource=resource)
    p.add_span_processor(BatchSpanProcessor(exporter(protocol, endpoint)))
    return p


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--protocol", choices=["grpc", "http"], required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--tick-after", type=float, default=0.0)
    args = parser.parse_args()

    frontend_provider = provider("frontend", args.protocol, args.endpoint)
    cart_provider = provider("cart", args.protocol, args.endpoint)
    frontend = frontend_provider.get_tracer("emit_trace")
    cart = cart_provider.get_tracer("emit_trace")

    with frontend.start_as_current_span(
        "GET /cart",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.route": "/cart",
            "url.path": "/cart",
            "http.response.status_code": 200,
        },
    ) as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        with frontend.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "GET",
                "server.address": "cart",
                "server.port": 8080,
                "url.full": "http://cart:8080/api/cart/42",
                "http.response.status_code": 200,
            },
        ):
            headers = {}
            inject(headers)

        with cart.start_as_current_span(
            "GET /api/cart/{id}",
            context=extract(headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "GET",
                "http.route": "/api/cart/{id}",
                "url.path": "/api/cart/42",
                "http.response.status_code": 200,
            },
        ):
            with cart.start_as_current_span(
                "GET",
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system": "redis",
                    "db.operation.name": "GET",
                    "server.address": "redis",
                    "server.port": 6379,
                },
            ):
                pass

    if args.tick_after > 0:
        frontend_provider.force_flush(timeout_millis=10_000)
        cart_provider.force_flush(timeout_millis=10_000)
        time.sleep(args.tick_after)
        with frontend.start_as_current_span(
            "GET /healthz",
            kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "http.route": "/healthz"},
        ):
            pass

    ok = True
    for p in (cart_provider, frontend_provider):
        ok = p.force_flush(timeout_millis=10_000) and ok
        p.shutdown()
    if not ok:
        print("export did not finish", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"trace_id": trace_id}))


if __name__ == "__main__":
    main()
