"""The OTLP receiver's memory is bounded whatever the spans say: children waiting for a
parent that never comes are capped in total (not per parent), and what is forgotten is
counted."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from controlplane.collectors.traces import SpanIndex


def orphans(count: int, parent: bytes, first: int) -> ExportTraceServiceRequest:
    """`count` spans of service `api`, all naming `parent`, which never arrives."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    attribute = resource.resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "api"
    spans = resource.scope_spans.add()
    for n in range(first, first + count):
        span = spans.spans.add()
        span.name, span.span_id, span.parent_span_id = "GET", n.to_bytes(8, "big"), parent
        span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    return request


def test_children_of_one_missing_parent_cannot_grow_memory_without_bound():
    index = SpanIndex(capacity=100)
    dropped = 0
    for n in range(12):  # twelve requests naming one missing parent, 50 children each
        dropped += index.aggregate(orphans(50, b"\xff" * 8, first=n * 50)).orphans_dropped
    assert index.children_waiting <= 100
    assert sum(len(c) for c in index.waiting.values()) == index.children_waiting
    assert dropped == 600 - index.children_waiting
    assert len(index.services) <= 100


def test_a_parent_that_arrives_takes_its_children_out_of_the_wait():
    index = SpanIndex(capacity=100)
    index.aggregate(orphans(3, b"\x01" * 8, first=10))
    assert index.children_waiting == 3
    parent = orphans(1, b"", first=1)
    parent.resource_spans[0].resource.attributes[0].value.string_value = "gateway"
    parent.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01" * 8
    out = index.aggregate(parent)
    assert index.children_waiting == 0
    assert sum(v[0] for v in out.edges.values()) == 3  # gateway -> api, three calls
