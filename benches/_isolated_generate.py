"""Child process of bench_tracing: isolated generate() calls under one tracing mode.

``python _isolated_generate.py MODE URL CALLS IDLE`` prints the median seconds of one call.
Each call is isolated as a developer makes them: drain the exporter, sleep 2 ms, one call.
With ``IDLE`` > 0 every mode first idles until ``IDLE`` seconds after the drain began, so
all modes rest equally long between calls (a longer rest alone makes the next call slower:
caches and CPU frequency cool down, on any exporter and on none).
Modes: ``untraced`` (OTEL_SDK_DISABLED: no spans), ``floor`` (an SDK TracerProvider with no
processor: spans made, nothing exported), ``genkit`` (genkit 0.12's realtime processor),
``ours`` (genkit-parity's), ``dev`` (genkit-parity under ``genkit start``'s environment:
genkit's reflection server and its OTLP log export to ``/api/otlp`` as well), ``post`` (the
floor of exporting: ``floor`` plus, at each drain, one POST of the call's finished spans,
encoded by genkit's own exporter; the least any exporter sends the server).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

MODE, URL, CALLS, IDLE = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

from genkit._core._trace import _log_exporter  # noqa: E402
from genkit._core._trace._default_exporter import TraceServerExporter  # noqa: E402
from genkit._core._trace._realtime_processor import RealtimeSpanProcessor as GenkitProcessor  # noqa: E402

from genkit_parity import Genkit, _compat  # noqa: E402
from genkit_parity.testing.models import define_echo_model  # noqa: E402
from genkit_parity.tracing import TelemetryConfig, enable_telemetry, flush_tracing, telemetry_stats  # noqa: E402

ai = Genkit()
define_echo_model(ai)
provider = _compat.tracer_provider()
processor: Any = None
if MODE in ('untraced', 'floor', 'genkit', 'ours', 'post'):
    _compat.remove_span_processors(provider, _compat.genkit_telemetry_processors(provider))
if MODE == 'genkit':
    processor = GenkitProcessor(TraceServerExporter(telemetry_server_url=URL))
    provider.add_span_processor(processor)
elif MODE == 'ours':
    enable_telemetry(TelemetryConfig(server_url=URL, realtime=True, queue_capacity=1_000_000))
elif MODE == 'post':
    from opentelemetry.sdk.trace import SpanProcessor

    class Collector(SpanProcessor):
        """Keeps the finished spans (a list append on the calling thread) for the drain."""

        def __init__(self) -> None:
            self.ended: list[Any] = []

        def on_end(self, span: Any) -> None:
            self.ended.append(span)

    collector = Collector()
    provider.add_span_processor(collector)
    post_exporter = TraceServerExporter(telemetry_server_url=URL)

    def post_spans() -> None:
        """One POST of the spans finished since the last drain, waited for."""
        spans, collector.ended = collector.ended, []
        post_exporter.export(spans)
        post_exporter.force_flush(60_000)


async def drain() -> None:
    if MODE == 'post':
        await asyncio.to_thread(post_spans)
    elif processor is not None:
        await asyncio.to_thread(processor.force_flush, 60_000)
    elif MODE in ('ours', 'dev'):
        await flush_tracing(60)
    if MODE == 'dev':
        exporter = _log_exporter._exporter
        if exporter is not None:
            await asyncio.to_thread(exporter.force_flush, timeout_s=60)


async def main() -> float:
    times = []
    for i in range(CALLS):
        rest_began = time.perf_counter()
        await drain()
        if IDLE > 0:
            await asyncio.sleep(max(0.0, rest_began + IDLE - time.perf_counter()))
        await asyncio.sleep(0.002)
        began = time.perf_counter()
        await ai.generate(model='echoModel', prompt=f'hello {i}')
        times.append(time.perf_counter() - began)
    await drain()
    if MODE in ('ours', 'dev'):
        stats = telemetry_stats()
        assert stats is not None and stats['dropped'] == 0 and stats['posts_failed'] == 0, stats
    return statistics.median(times)


print(asyncio.run(main()), flush=True)
