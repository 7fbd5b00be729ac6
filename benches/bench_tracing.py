"""Live tracing: generate() latency untraced, with genkit 0.12's realtime processor, and with
ours, all exporting to the real npm telemetry server on loopback; and the cost of one
on_start/on_end hook on the calling thread for both processors.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from genkit._core._trace._default_exporter import TraceServerExporter
from genkit._core._trace._realtime_processor import RealtimeSpanProcessor as GenkitRealtimeProcessor
from opentelemetry.sdk.trace import TracerProvider

from _stats import ratios, summary
from genkit_parity import Genkit, _compat
from genkit_parity._native import SpanSink
from genkit_parity.testing.models import define_echo_model
from genkit_parity.tracing import RealtimeSpanProcessor, cleanup_tracing, flush_tracing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests._telemetry import telemetry_server

RUNS = 7
CALLS = 300
HOOK_SPANS = 5_000


def genkit_processor(url: str) -> GenkitRealtimeProcessor:
    return GenkitRealtimeProcessor(TraceServerExporter(telemetry_server_url=url))


def our_processor(url: str) -> RealtimeSpanProcessor:
    # A queue large enough that nothing is dropped: the comparison is for work done.
    return RealtimeSpanProcessor(SpanSink(f'{url}/api/traces', True, queue_capacity=1_000_000))


async def generate_latency(ai: Genkit) -> float:
    """Median seconds of one generate() over CALLS calls."""
    times = []
    for i in range(CALLS):
        began = time.perf_counter()
        await ai.generate(model='echoModel', prompt=f'hello {i}')
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def flush(processor: Any) -> None:
    processor.force_flush(60_000)


def generate_rows(url: str) -> list[str]:
    ai = Genkit()
    define_echo_model(ai)
    provider = _compat.tracer_provider()
    cleanup_tracing()
    _compat.remove_span_processors(provider, _compat.genkit_telemetry_processors(provider))
    results: dict[str, list[float]] = {'untraced': [], 'genkit': [], 'ours': []}
    for _ in range(RUNS):
        for name, make in (('untraced', None), ('genkit', genkit_processor), ('ours', our_processor)):
            processor = make(url) if make else None
            if processor is not None:
                provider.add_span_processor(processor)
            results[name].append(asyncio.run(generate_latency(ai)))
            if processor is not None:
                flush(processor)
                _compat.remove_span_processors(provider, [processor])
                processor.shutdown()
    untraced = results['untraced']
    return [
        f'| untraced | {summary([t * 1e6 for t in untraced], " µs")} | 1.00× |',
        f'| genkit 0.12 realtime processor | {summary([t * 1e6 for t in results["genkit"]], " µs")} | '
        f'{summary(ratios(results["genkit"], untraced), "×", 2)} |',
        f'| genkit-parity processor | {summary([t * 1e6 for t in results["ours"]], " µs")} | '
        f'{summary(ratios(results["ours"], untraced), "×", 2)} |',
    ]


def spans(count: int) -> list[Any]:
    """Finished spans shaped like genkit's model spans (no processors on their provider)."""
    tracer = TracerProvider().get_tracer('genkit-tracer', 'v1')
    made = []
    for i in range(count):
        span = tracer.start_span(
            'echoModel',
            attributes={
                'genkit:name': 'echoModel',
                'genkit:type': 'action',
                'genkit:metadata:subtype': 'model',
                'genkit:path': '/{flow,t:action,s:flow}/{generate,t:util}/{echoModel,t:action,s:model}',
                'genkit:input': json.dumps(
                    {'messages': [{'role': 'user', 'content': [{'text': f'hello {i}'}]}]}
                ),
            },
        )
        span.set_attribute('genkit:state', 'success')
        span.end()
        made.append(span)
    return made


def hook_costs(url: str) -> dict[str, dict[str, list[float]]]:
    costs: dict[str, dict[str, list[float]]] = {
        'genkit': {'on_start': [], 'on_end': []},
        'ours': {'on_start': [], 'on_end': []},
    }
    batch = spans(HOOK_SPANS)
    for _ in range(RUNS):
        for name, make in (('genkit', genkit_processor), ('ours', our_processor)):
            processor = make(url)
            for hook in ('on_start', 'on_end'):
                call = getattr(processor, hook)
                began = time.perf_counter()
                for span in batch:
                    call(span)
                costs[name][hook].append((time.perf_counter() - began) / len(batch))
                flush(processor)
            processor.shutdown()
    return costs


def main() -> str:
    with tempfile.TemporaryDirectory() as store, telemetry_server(Path(store)) as url:
        rows = generate_rows(url)
        costs = hook_costs(url)
    asyncio.run(flush_tracing())
    lines = [
        '## Live tracing (issue 5)',
        '',
        f'`generate()` with the echo model, median per call over {CALLS} calls, median of {RUNS} runs '
        '(min–max); realtime export (on start and on end) to the real `@genkit-ai/telemetry-server` '
        'on loopback. Ratio = traced / untraced latency.',
        '',
        '| tracing | generate() | vs untraced |',
        '|---|---|---|',
        *rows,
        '',
        f'Per-hook cost on the calling thread ({HOOK_SPANS:,} genkit-shaped model spans; genkit encodes '
        'on the caller and hands JSON to its worker thread, ours copies into Rust and queues):',
        '',
        '| hook | genkit 0.12 | genkit-parity | genkit / ours |',
        '|---|---|---|---|',
    ]
    for hook in ('on_start', 'on_end'):
        theirs, ours = costs['genkit'][hook], costs['ours'][hook]
        lines.append(
            f'| `{hook}` | {summary([c * 1e6 for c in theirs], " µs")} | {summary([c * 1e6 for c in ours], " µs")} '
            f'| {summary(ratios(theirs, ours), "×")} |'
        )
    lines.append('')
    return '\n'.join(lines)


if __name__ == '__main__':
    print(main())
