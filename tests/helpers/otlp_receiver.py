"""An OTLP/HTTP trace receiver, as a collector is one: POST /v1/traces with a protobuf
ExportTraceServiceRequest (decoded with the opentelemetry-proto package), answered with an
ExportTraceServiceResponse. It keeps every span it received, flattened."""
from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                         ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan, Status as PbStatus


@dataclass
class Span:
    name: str
    kind: str                      # SERVER | CLIENT | INTERNAL | ...
    trace_id: str                  # 32 hex digits
    span_id: str                   # 16 hex digits
    parent_span_id: str            # "" for a root
    attributes: dict
    resource: dict
    error: bool
    start_ns: int
    end_ns: int
    children: list = field(default_factory=list)


def _value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def _attrs(kvs) -> dict:
    return {kv.key: _value(kv.value) for kv in kvs}


class OTLPReceiver:
    def __init__(self):
        self.spans: list[Span] = []
        self.exports = 0
        self.content_types: set[str] = set()

    async def traces(self, request: web.Request) -> web.Response:
        self.content_types.add(request.content_type)
        msg = ExportTraceServiceRequest()
        msg.ParseFromString(await request.read())
        self.exports += 1
        for rs in msg.resource_spans:
            resource = _attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append(Span(
                        name=s.name, kind=PbSpan.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                        trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                        attributes=_attrs(s.attributes), resource=resource,
                        error=s.status.code == PbStatus.STATUS_CODE_ERROR,
                        start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self.traces)
        return app

    def requests(self) -> list[Span]:
        """The request spans (kind SERVER), each with its `children`."""
        by_id = {s.span_id: s for s in self.spans}
        for s in self.spans:
            s.children = []
        for s in self.spans:
            parent = by_id.get(s.parent_span_id)
            if parent is not None:
                parent.children.append(s)
        return [s for s in self.spans if s.kind == "SERVER"]
