"""Live tracing: generate() latency untraced, with genkit 0.12's realtime processor, and with
ours, all exporting to the real npm telemetry server on loopback; isolated calls (drain,
sleep 2 ms, one call; each mode in a fresh process) against the real server and against a
sink that sleeps 50 ms per request in another process, with the floor (spans made, nothing
exported); and the cost of one on_start/on_end hook on the calling thread for both processors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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
ISOLATED_RUNS = int(os.environ.get('BENCH_TRACING_RUNS', '5'))
ISOLATED_CALLS = int(os.environ.get('BENCH_TRACING_CALLS', '200'))
HERE = Path(__file__).resolve().parent

# A telemetry sink in its own process: reads the body, sleeps 50 ms, answers; no parsing.
SLEEPING_SINK = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers['Content-Length']))
        time.sleep(0.05)
        self.send_response(200)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'OK')

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


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


def isolated_call(mode: str, url: str, idle: float) -> float:
    """Median seconds of one isolated generate() under ``mode``, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('GENKIT_', 'OTEL_'))}
    if mode == 'untraced':
        env['OTEL_SDK_DISABLED'] = 'true'
    if mode == 'dev':  # what `genkit start` sets for the app
        env.update(GENKIT_ENV='dev', GENKIT_TELEMETRY_SERVER=url, GENKIT_ENABLE_REALTIME_TELEMETRY='true')
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(
            [sys.executable, str(HERE / '_isolated_generate.py'), mode, url, str(ISOLATED_CALLS), str(idle)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f'isolated generate ({mode}) failed:\n{result.stderr}')
    return float(result.stdout.strip().splitlines()[-1])


#: (label, mode, target, idle seconds): the issue's method (idle 0: drain, sleep 2 ms, call),
#: then the same with every mode resting equally long between calls.
ISOLATED_CASES = [
    ('untraced (no spans)', 'untraced', 'server', 0.0),
    ('floor: TracerProvider, no processor', 'floor', 'server', 0.0),
    (
        "floor of exporting: floor + one POST of the call's spans at the drain (genkit's encoder), real server",
        'post',
        'server',
        0.0,
    ),
    ('genkit 0.12 realtime processor, real server', 'genkit', 'server', 0.0),
    ('genkit-parity, real server', 'ours', 'server', 0.0),
    (
        'genkit-parity under `genkit start` env (+ reflection server, OTLP logs), real server',
        'dev',
        'server',
        0.0,
    ),
    ('genkit 0.12 realtime processor, 50 ms sink', 'genkit', 'sink', 0.0),
    ('genkit-parity, 50 ms sink', 'ours', 'sink', 0.0),
    ('untraced, 20 ms rest', 'untraced', 'server', 0.02),
    ('floor, 20 ms rest', 'floor', 'server', 0.02),
    ('floor of exporting, real server, 20 ms rest', 'post', 'server', 0.02),
    ('genkit 0.12, real server, 20 ms rest', 'genkit', 'server', 0.02),
    ('genkit-parity, real server, 20 ms rest', 'ours', 'server', 0.02),
    ('genkit-parity under `genkit start` env, real server, 20 ms rest', 'dev', 'server', 0.02),
    ('untraced, 60 ms rest', 'untraced', 'sink', 0.06),
    ('floor, 60 ms rest', 'floor', 'sink', 0.06),
    ('genkit 0.12, 50 ms sink, 60 ms rest', 'genkit', 'sink', 0.06),
    ('genkit-parity, 50 ms sink, 60 ms rest', 'ours', 'sink', 0.06),
]


def isolated_rows(url: str, sink_url: str) -> list[str]:
    targets = {'server': url, 'sink': sink_url}
    times: dict[str, list[float]] = {case[0]: [] for case in ISOLATED_CASES}
    for _ in range(ISOLATED_RUNS):  # modes interleaved per run, so drift hits them alike
        for label, mode, target, idle in ISOLATED_CASES:
            times[label].append(isolated_call(mode, targets[target], idle))
    baselines = {idle: times[label] for label, mode, _target, idle in ISOLATED_CASES if mode == 'untraced'}
    return [
        f'| {label} | {summary([t * 1e6 for t in times[label]], " µs")} | '
        f'{summary(ratios(times[label], baselines[idle]), "×", 2)} |'
        for label, _mode, _target, idle in ISOLATED_CASES
    ]


@contextlib.contextmanager
def sleeping_sink() -> Iterator[str]:
    with subprocess.Popen([sys.executable, '-c', SLEEPING_SINK], stdout=subprocess.PIPE, text=True) as sink:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        try:
            yield f'http://127.0.0.1:{port}'
        finally:
            sink.terminate()
            sink.wait(timeout=10)


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
        with sleeping_sink() as sink_url:
            isolated = isolated_rows(url, sink_url)
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
        f'Isolated calls, as a developer makes them (issue 13): drain the exporter, sleep 2 ms, one '
        f'`generate()`; median per call over {ISOLATED_CALLS} calls, median of {ISOLATED_RUNS} runs '
        '(min–max), each mode in a fresh process, runs interleaved. Ratio = traced / untraced '
        '(OTEL_SDK_DISABLED). The 50 ms sink is another process that sleeps 50 ms per POST and '
        'parses nothing. Targets: ≤ 1.3× against the real server, ≤ 1.2× with the sink. The rows '
        'with a rest give every mode the same time between calls (drain, then idle up to the rest, '
        'then 2 ms), each against untraced with that rest: waiting 50 ms for the sink alone makes '
        'the next call slower even with no processor at all, so the first method charges the '
        "exporter for the CPU's cool-down.",
        '',
        '| tracing | generate() | vs untraced |',
        '|---|---|---|',
        *isolated,
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
