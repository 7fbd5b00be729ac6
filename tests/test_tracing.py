"""Live tracing against the real Genkit telemetry server (npm), through the Rust exporter."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from genkit_parity import Genkit
from genkit_parity.testing.models import define_echo_model, define_programmable_model
from genkit_parity.tracing import (
    AdjustingSpanExporter,
    TelemetryConfig,
    cleanup_tracing,
    enable_telemetry,
    flush_tracing,
    telemetry_stats,
)

from ._telemetry import SlowSink, find_trace, free_port, get_json, telemetry_server


@pytest.fixture(scope='module')
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with telemetry_server(tmp_path_factory.mktemp('telemetry')) as url:
        yield url


@pytest.fixture
def traced(server: str) -> Iterator[str]:
    """Realtime export to the real server for one test."""
    enable_telemetry(TelemetryConfig(server_url=server, realtime=True))
    yield server
    cleanup_tracing()


def run_child(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, '-c', code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def make_app(flow_name: str) -> tuple[Genkit, Any]:
    ai = Genkit()
    define_echo_model(ai)

    @ai.flow(name=flow_name)
    async def flow(text: str) -> str:
        return (await ai.generate(model='echoModel', prompt=text)).text

    return ai, flow


async def test_flow_generate_model_arrives_as_three_linked_spans(traced: str) -> None:
    _, flow = make_app('tracedFlow')
    assert await flow('hello') == 'Echo: hello; config: {}'
    assert await flush_tracing()
    trace = find_trace(traced, 'tracedFlow')
    assert trace is not None
    spans = {s['attributes']['genkit:name']: s for s in trace['spans'].values()}
    assert set(spans) == {'tracedFlow', 'generate', 'echoModel'}
    root, generate, model = spans['tracedFlow'], spans['generate'], spans['echoModel']
    assert 'parentSpanId' not in root
    assert generate['parentSpanId'] == root['spanId'] and model['parentSpanId'] == generate['spanId']
    # genkit 0.12's path format (JS writes '/{tracedFlow,t:flow}'); exported as genkit made it.
    assert root['attributes']['genkit:path'] == '/{tracedFlow,t:action,s:flow}'
    assert model['attributes']['genkit:path'] == (
        '/{tracedFlow,t:action,s:flow}/{generate,t:util}/{echoModel,t:action,s:model}'
    )
    assert all(s['attributes']['genkit:state'] == 'success' for s in spans.values())
    assert model['attributes']['genkit:metadata:subtype'] == 'model'
    assert '"hello"' in root['attributes']['genkit:input']
    for span in spans.values():
        assert span['traceId'] == trace['traceId']
        assert 0 < span['startTime'] <= span['endTime']
        assert span['instrumentationLibrary'] == {'name': 'genkit-tracer', 'version': 'v1'}
        assert span['spanKind'] == 'INTERNAL' and span['status'] == {'code': 0}
    assert (
        root['startTime']
        <= generate['startTime']
        <= model['startTime']
        <= model['endTime']
        <= root['endTime']
    )
    assert trace['displayName'] == 'tracedFlow'
    assert trace['startTime'] == root['startTime'] and trace['endTime'] == root['endTime']


def waiting_flow(name: str) -> tuple[asyncio.Event, Callable[[str], Awaitable[str]]]:
    """A flow named ``name`` that stays open (its span unended) until the event is set."""
    ai = Genkit()
    release = asyncio.Event()

    @ai.flow(name=name)
    async def waiting(_: str) -> str:
        await release.wait()
        return 'done'

    return release, waiting


async def test_realtime_sends_the_open_span_then_its_end(traced: str) -> None:
    release, waiting = waiting_flow('waitingFlow')

    task = asyncio.create_task(waiting('x'))
    for _ in range(100):  # until the flow is running
        await asyncio.sleep(0.01)
        await flush_tracing()
        open_trace = find_trace(traced, 'waitingFlow')
        if open_trace:
            break
    assert open_trace is not None
    (open_span,) = open_trace['spans'].values()
    assert open_span['endTime'] == 0 and open_trace['endTime'] == 0
    assert 'genkit:state' not in open_span['attributes']
    release.set()
    assert await task == 'done'
    assert await flush_tracing()
    (closed_span,) = find_trace(traced, 'waitingFlow')['spans'].values()  # type: ignore[index]
    assert closed_span['endTime'] >= closed_span['startTime'] > 0
    assert closed_span['attributes']['genkit:state'] == 'success'


async def test_spans_reach_the_server_unprompted_while_the_app_runs(traced: str) -> None:
    """No flush: the exporter wakes by itself and sends the open span, then its end."""
    release, waiting = waiting_flow('unpromptedFlow')

    async def until(found: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        for _ in range(250):  # 5 s, against an exporter period of 100 ms
            trace = found()
            if trace is not None:
                return trace
            await asyncio.sleep(0.02)
        return None

    task = asyncio.create_task(waiting('x'))
    open_trace = await until(lambda: find_trace(traced, 'unpromptedFlow'))
    assert open_trace is not None and open_trace['endTime'] == 0
    release.set()
    assert await task == 'done'

    def ended() -> dict[str, Any] | None:
        trace = find_trace(traced, 'unpromptedFlow')
        return trace if trace is not None and trace['endTime'] > 0 else None

    closed = await until(ended)
    assert closed is not None
    (span,) = closed['spans'].values()
    assert span['attributes']['genkit:state'] == 'success'


async def test_end_only_mode_sends_nothing_while_a_span_is_open(server: str) -> None:
    enable_telemetry(TelemetryConfig(server_url=server, realtime=False))
    try:
        release, waiting = waiting_flow('endOnlyFlow')

        task = asyncio.create_task(waiting('x'))
        await asyncio.sleep(0.05)
        assert await flush_tracing()
        assert find_trace(server, 'endOnlyFlow') is None
        release.set()
        await task
        assert await flush_tracing()
        assert find_trace(server, 'endOnlyFlow') is not None
    finally:
        cleanup_tracing()


async def test_error_span_carries_status_and_exception_event(traced: str) -> None:
    ai = Genkit()
    define_programmable_model(ai, 'exploding', respond=ValueError('model exploded'))

    @ai.flow(name='failingFlow')
    async def failing(text: str) -> str:
        response = await ai.generate(model='exploding', prompt=text)
        if response.error is not None:
            raise RuntimeError(response.error.message)
        return response.text

    with pytest.raises(Exception, match='failingFlow'):
        await failing('x')
    assert await flush_tracing()
    trace = find_trace(traced, 'failingFlow')
    assert trace is not None
    by_name = {s['attributes']['genkit:name']: s for s in trace['spans'].values()}
    model = by_name['exploding']
    assert model['attributes']['genkit:state'] == 'error'
    assert model['status']['code'] == 2 and 'model exploded' in model['status']['message']
    (event,) = [e for e in model['timeEvents']['timeEvent'] if e['annotation']['description'] == 'exception']
    assert 'model exploded' in event['annotation']['attributes']['exception.message']
    assert event['annotation']['attributes']['exception.type'] == 'ValueError'
    assert by_name['failingFlow']['attributes']['genkit:state'] == 'error'


async def test_flush_delivers_everything_queued(traced: str) -> None:
    _, flow = make_app('manyFlow')
    before = get_json(f'{traced}/api/traces?limit=1000')['traces']
    await asyncio.gather(*(flow(f'n{i}') for i in range(40)))
    assert await flush_tracing()
    after = get_json(f'{traced}/api/traces?limit=1000')['traces']
    new = {t['traceId'] for t in after if t.get('displayName') == 'manyFlow'} - {t['traceId'] for t in before}
    assert len(new) == 40
    stats = telemetry_stats()
    assert stats is not None and stats['processed'] == stats['queued'] and stats['dropped'] == 0
    assert stats['posts_failed'] == 0


async def test_server_down_never_fails_generate_and_memory_stays_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f'http://127.0.0.1:{free_port()}'  # nothing listens here
    enable_telemetry(TelemetryConfig(server_url=dead, realtime=True, queue_capacity=64))
    try:
        _, flow = make_app('unheardFlow')
        with caplog.at_level(logging.WARNING, logger='genkit_parity.tracing'):
            assert await flow('still works') == 'Echo: still works; config: {}'
            tracer = trace_api.get_tracer('load-test')
            for i in range(5_000):  # far more than the queue holds
                with tracer.start_as_current_span(f'span{i}'):
                    pass
            assert await flush_tracing(10)
        stats = telemetry_stats()
        assert stats is not None
        assert stats['dropped'] > 0 and stats['queued'] + stats['dropped'] >= 5_000
        assert stats['posts_failed'] > 0 and 'cannot reach the telemetry server' in stats['last_error']
        warnings = [r.getMessage() for r in caplog.records]
        assert sum('spans are being dropped' in w for w in warnings) <= 1
        assert sum('failed to save traces' in w for w in warnings) <= 1
        assert any('spans are being dropped' in w or 'failed to save traces' in w for w in warnings)
    finally:
        cleanup_tracing()


async def test_a_slow_sink_does_not_hold_the_caller() -> None:
    sink = SlowSink(delay=0.05)
    enable_telemetry(TelemetryConfig(server_url=sink.url, realtime=True))
    try:
        _, flow = make_app('slowSinkFlow')
        for i in range(5):
            assert await flow(f'x{i}') == f'Echo: x{i}; config: {{}}'
        # 5 flows x 3 spans x 2 hooks: a caller waiting on its POSTs would have seen 30 answers.
        assert len(sink.bodies) < 30
        assert await flush_tracing(10)
        roots = {
            span['traceId']
            for body in sink.bodies
            for span in body['spans'].values()
            if span['attributes'].get('genkit:name') == 'slowSinkFlow' and span['endTime'] > 0
        }
        assert len(roots) == 5
    finally:
        cleanup_tracing()
        sink.close()


def test_adjusting_exporter_applies_the_js_rules() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(AdjustingSpanExporter(memory)))
    tracer = provider.get_tracer('t')
    with tracer.start_as_current_span('niceFlow') as span:
        span.set_attributes(
            {
                'genkit:name': 'niceFlow',
                'genkit:type': 'action',
                'genkit:isRoot': True,
                'genkit:state': 'error',
                'genkit:isFailureSource': True,
                'genkit:path': '/{niceFlow,t:flow}',
                'genkit:input': '"secret"',
            }
        )
        span.set_status(Status(StatusCode.ERROR, 'boom'))
    (exported,) = memory.get_finished_spans()
    attrs = dict(exported.attributes or {})
    assert attrs['genkit/input'] == attrs['genkit/output'] == '<redacted>'
    assert attrs['genkit/rootState'] == 'error' and attrs['genkit/feature'] == 'niceFlow'
    assert attrs['genkit/failedSpan'] == 'niceFlow' and attrs['/http/status_code'] == '599'
    assert not any(':' in key for key in attrs)
    assert AdjustingSpanExporter(memory).export([]) == SpanExportResult.SUCCESS


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match='http:// URL'):
        enable_telemetry(TelemetryConfig(server_url='https://example.com'))
    with pytest.raises(ValueError, match='http:// URL'):
        enable_telemetry(TelemetryConfig(server_url='not a url'))
    with pytest.raises(ValueError, match='sample_ratio'):
        enable_telemetry(TelemetryConfig(server_url='http://127.0.0.1:1', sample_ratio=2))
    with pytest.raises(TypeError, match='TelemetryConfig'):
        enable_telemetry({'server_url': 'http://x'})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match='SpanExporter'):
        enable_telemetry(TelemetryConfig(exporters=[object()]))  # type: ignore[list-item]
    with pytest.raises(ValueError, match='timeout'):
        asyncio.run(flush_tracing(-1))
    with pytest.raises(ValueError, match='at most'):
        enable_telemetry(TelemetryConfig(server_url='http://127.0.0.1:1', queue_capacity=2**62))
    # Out-of-range numbers are clamped, never a Rust panic.
    enable_telemetry(TelemetryConfig(server_url='http://127.0.0.1:1', request_timeout=float('inf')))
    assert asyncio.run(flush_tracing(1e20))
    cleanup_tracing()


def test_sampling_keeps_whole_traces_only(server: str) -> None:
    memory = InMemorySpanExporter()
    enable_telemetry(TelemetryConfig(sample_ratio=0.0, exporters=[memory], adjust_exporters=True))
    try:
        tracer = trace_api.get_tracer('sampling')
        for _ in range(20):
            with tracer.start_as_current_span('dropped'):
                pass
        assert asyncio.run(flush_tracing())
        assert memory.get_finished_spans() == ()
    finally:
        cleanup_tracing()


def test_genkit_parity_replaces_genkits_processor_in_dev_mode(server: str, tmp_path: Path) -> None:
    # genkit wires its processor at import time from the environment, so this runs in a child.
    code = textwrap.dedent(
        """
        import asyncio
        from genkit_parity import Genkit, _compat
        from genkit_parity.testing.models import define_echo_model
        from genkit_parity.tracing import RealtimeSpanProcessor, flush_tracing

        provider = _compat.tracer_provider()
        print('genkit before', len(_compat.genkit_telemetry_processors(provider)))
        ai = Genkit()
        define_echo_model(ai)

        @ai.flow(name='childFlow')
        async def child(text: str) -> str:
            return (await ai.generate(model='echoModel', prompt=text)).text

        async def main():
            print(await child('hi'))
            print('flushed', await flush_tracing())
            from genkit._core._trace import _log_exporter
            logs = _log_exporter._exporter
            logs.force_flush(timeout_s=10)
            print('logs', type(logs).__name__, logs.stats()['posts_ok'] > 0, logs.stats()['posts_failed'])
            await ai.stop_servers()

        asyncio.run(main())
        processors = provider._active_span_processor._span_processors
        ours = [p for p in processors if isinstance(p, RealtimeSpanProcessor)]
        left = len(_compat.genkit_telemetry_processors(provider))
        print('genkit after', left, 'ours', len(ours), ours[0].realtime)
        """
    )
    env = {
        **os.environ,
        'GENKIT_ENV': 'dev',
        'GENKIT_TELEMETRY_SERVER': server,
        'GENKIT_ENABLE_REALTIME_TELEMETRY': 'true',
    }
    result = run_child(code, tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert 'genkit before 1' in result.stdout
    assert 'genkit after 0 ours 1 True' in result.stdout
    assert 'flushed True' in result.stdout
    assert 'logs NativeLogExporter True 0' in result.stdout  # the real server takes genkit's log records
    trace = find_trace(server, 'childFlow')
    assert trace is not None and len(trace['spans']) == 3
    assert not list(tmp_path.glob('.genkit/runtimes/*.json')), 'stop_servers left the runtime file'


def test_opting_out_keeps_genkits_processor(server: str, tmp_path: Path) -> None:
    code = 'from genkit_parity import Genkit, _compat\nGenkit()\n' + (
        "print('genkit', len(_compat.genkit_telemetry_processors(_compat.tracer_provider())))"
    )
    env = {
        **os.environ,
        'GENKIT_ENV': 'dev',
        'GENKIT_TELEMETRY_SERVER': server,
        'GENKIT_PARITY_TELEMETRY': 'genkit',
    }
    result = run_child(code, tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert 'genkit 1' in result.stdout


def test_no_export_outside_dev_mode_unless_enabled(server: str, tmp_path: Path) -> None:
    # genkit 0.12 exports nothing with GENKIT_TELEMETRY_SERVER set but GENKIT_ENV unset
    # (production): neither may we, prompts and outputs included; enable_telemetry opts in.
    code = textwrap.dedent(
        """
        import asyncio, sys
        from genkit_parity import Genkit, _compat
        from genkit_parity.testing.models import define_echo_model
        from genkit_parity.tracing import enable_telemetry, flush_tracing, telemetry_stats

        ai = Genkit()
        define_echo_model(ai)

        @ai.flow(name=sys.argv[1])
        async def flow(text: str) -> str:
            return (await ai.generate(model='echoModel', prompt=text)).text

        async def main():
            if sys.argv[2] == 'enable':
                enable_telemetry()
            print(await flow('secret prompt'))
            print('flushed', await flush_tracing())
            print('stats', telemetry_stats() is not None)

        asyncio.run(main())
        """
    )
    env = {**os.environ, 'GENKIT_TELEMETRY_SERVER': server}
    env.pop('GENKIT_ENV', None)
    silent = subprocess.run(
        [sys.executable, '-c', code, 'prodFlow', 'default'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert silent.returncode == 0, silent.stderr
    assert 'stats False' in silent.stdout
    enabled = subprocess.run(
        [sys.executable, '-c', code, 'prodEnabledFlow', 'enable'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert enabled.returncode == 0, enabled.stderr
    assert 'flushed True' in enabled.stdout and 'stats True' in enabled.stdout
    assert find_trace(server, 'prodEnabledFlow') is not None
    assert find_trace(server, 'prodFlow') is None


def test_dev_mode_log_records_go_through_the_native_exporter(tmp_path: Path) -> None:
    # genkit's dev-mode log view (/api/otlp): same records, same document, sent from Rust.
    received: list[tuple[str, dict[str, Any]]] = []

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers['Content-Length']))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.send_header('Content-Length', '2')
            self.end_headers()
            self.wfile.write(b'{}')

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    code = textwrap.dedent(
        """
        import asyncio
        from genkit._core._trace import _log_exporter
        from genkit_parity import Genkit
        from genkit_parity.testing.models import define_echo_model
        from genkit_parity.tracing import NativeLogExporter, flush_tracing

        ai = Genkit()
        define_echo_model(ai)

        async def main():
            await asyncio.sleep(0.5)  # genkit turns its debug records on once its servers are up
            await ai.generate(model='echoModel', prompt='hi')
            exporter = _log_exporter._exporter
            print('native', isinstance(exporter, NativeLogExporter))
            print('flushed', exporter.force_flush(timeout_s=10), await flush_tracing())
            print('stats', exporter.stats()['posts_ok'] >= 1, exporter.stats()['dropped'])
            await ai.stop_servers()

        asyncio.run(main())
        """
    )
    env = {
        **os.environ,
        'GENKIT_ENV': 'dev',
        'GENKIT_TELEMETRY_SERVER': f'http://127.0.0.1:{server.server_port}',
    }
    try:
        result = run_child(code, tmp_path, env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert 'native True' in result.stdout and 'flushed True True' in result.stdout, result.stdout
    assert 'stats True 0' in result.stdout
    logs = [body for path, body in received if path == '/api/otlp']
    scopes = [scope for body in logs for resource in body['resourceLogs'] for scope in resource['scopeLogs']]
    assert scopes and all(scope['scope']['name'] == 'genkit-py' for scope in scopes)
    events = [record['body']['stringValue'] for scope in scopes for record in scope['logRecords']]
    assert 'calling model' in events and 'model responded' in events
    record = next(
        r for scope in scopes for r in scope['logRecords'] if r['body']['stringValue'] == 'calling model'
    )
    assert record['severityText'] == 'DEBUG' and len(record['traceId']) == 32
    assert {'key': 'model', 'value': {'stringValue': 'echoModel'}} in record['attributes']
    assert any(path == '/api/traces' for path, _body in received)
