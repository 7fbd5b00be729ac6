"""Live tracing for the Genkit Dev UI, exported by the Rust core.

genkit 0.12 exports every span through a pure-Python path (pydantic models, ``json.dumps``
and a worker thread), which costs tens of microseconds per span hook on the calling thread.
Here the span processor copies each span into a Rust record and returns; a tokio task
batches, serialises and POSTs to ``<GENKIT_TELEMETRY_SERVER>/api/traces`` in the JSON genkit
sends, without the GIL. Memory is bounded: when the server is slow or down, spans are
dropped and counted (``telemetry_stats()``) and a warning is logged once; the app is never
blocked.

When genkit-parity is in use (``genkit_parity.Genkit()`` or ``extend(ai)``) and genkit
exports to a telemetry server (dev mode with ``GENKIT_TELEMETRY_SERVER`` set), its processor
replaces genkit's own telemetry-server processor, so nothing is exported twice; where genkit
exports nothing, neither does genkit-parity unless :func:`enable_telemetry` is called.
Set ``GENKIT_PARITY_TELEMETRY=genkit`` to keep genkit's, or call
:func:`enable_telemetry` yourself to choose the options.

Realtime semantics follow JS: spans are sent on start (open, ``endTime`` 0) and on end when
``GENKIT_ENV=dev`` and ``GENKIT_ENABLE_REALTIME_TELEMETRY=true`` (what ``genkit start``
sets); otherwise on end only, batched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlparse

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

from . import _compat
from ._native import LogSink, SpanSink, adjust_span_attributes

__all__ = [
    'AdjustingSpanExporter',
    'RealtimeSpanProcessor',
    'TelemetryConfig',
    'cleanup_tracing',
    'enable_telemetry',
    'flush_tracing',
    'telemetry_stats',
]

logger = logging.getLogger('genkit_parity.tracing')

#: Environment variable that keeps genkit's own telemetry-server processor when set to 'genkit'.
OPT_OUT_ENV = 'GENKIT_PARITY_TELEMETRY'
SHUTDOWN_TIMEOUT_SECONDS = 2.0
#: Where genkit sends its dev-mode log records (the Dev UI's log view).
LOG_ENDPOINT = '/api/otlp'


@dataclass(frozen=True)
class TelemetryConfig:
    """Options for :func:`enable_telemetry` (JS ``enableTelemetry(config)``).

    Attributes:
        server_url: the telemetry server (default: ``GENKIT_TELEMETRY_SERVER``); plain
            ``http://``. Any path is replaced by ``/api/traces``, as genkit does.
        realtime: export on start as well as on end (default: ``GENKIT_ENV=dev`` and
            ``GENKIT_ENABLE_REALTIME_TELEMETRY=true``).
        sample_ratio: share of traces exported, decided per trace id (1.0 = all).
        exporters: more OpenTelemetry ``SpanExporter``s (e.g. OTLP), each behind a
            ``BatchSpanProcessor`` and, unless ``adjust_exporters`` is False, an
            :class:`AdjustingSpanExporter` (JS's redaction rules).
        adjust_exporters: wrap ``exporters`` in :class:`AdjustingSpanExporter`.
        redact_input_output: what that wrapper does with ``genkit:input``/``genkit:output``.
        queue_capacity: spans that may wait for the telemetry server; more are dropped.
        request_timeout: seconds allowed for one POST.

    """

    server_url: str | None = None
    realtime: bool | None = None
    sample_ratio: float = 1.0
    exporters: Sequence[SpanExporter] = field(default_factory=tuple)
    adjust_exporters: bool = True
    redact_input_output: bool = True
    queue_capacity: int = 2048
    request_timeout: float = 30.0


def _sampled(trace_id: int, ratio: float) -> bool:
    # Same rule as the Rust sink: the low 64 bits of the trace id against the ratio.
    return ratio >= 1.0 or (trace_id & 0xFFFF_FFFF_FFFF_FFFF) < int(ratio * 0xFFFF_FFFF_FFFF_FFFF)


class RealtimeSpanProcessor(SpanProcessor):
    """An OpenTelemetry span processor that hands spans to the Rust exporter.

    ``on_start``/``on_end`` copy the span on the calling thread and return at once. Spans of
    traces genkit suppresses (Dev UI prompt previews) are skipped, as genkit skips them.
    """

    def __init__(self, sink: SpanSink) -> None:
        """Wrap a native ``SpanSink``."""
        self._sink = sink

    @property
    def realtime(self) -> bool:
        """Whether spans are also sent when they start."""
        return self._sink.realtime

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Send the open span (realtime mode only)."""
        if not self._sink.realtime or _compat.telemetry_suppressed():
            return
        self._report(self._sink.on_start(span))

    def on_end(self, span: ReadableSpan) -> None:
        """Send the finished span."""
        if _compat.telemetry_suppressed():
            return
        self._report(self._sink.on_end(span))

    @staticmethod
    def _report(warning: str | None) -> None:
        if warning is not None:
            logger.warning(warning)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until queued spans are delivered (or failed), up to the timeout."""
        return self._sink.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Stop taking spans; deliver what is queued within 2 seconds."""
        self._sink.shutdown(SHUTDOWN_TIMEOUT_SECONDS)

    def stats(self) -> dict[str, Any]:
        """Counters: queued, dropped, processed, posts_ok, posts_failed, last_error."""
        return self._sink.stats()


class AdjustingSpanExporter(SpanExporter):
    """JS's ``AdjustingTraceExporter`` rules in front of another exporter.

    Per span: root spans get ``genkit:rootState``; ``genkit:input``/``genkit:output`` become
    ``<redacted>`` (both, if either is present; ``redact_input_output=False`` keeps them);
    failed spans get ``/http/status_code: 599``; the failure source names
    ``genkit:failedSpan``/``genkit:failedPath``; roots name ``genkit:feature`` and model spans
    ``genkit:model``; every ``:`` in a key becomes ``/``.
    """

    def __init__(
        self, exporter: SpanExporter, *, redact_input_output: bool = True, sample_ratio: float = 1.0
    ) -> None:
        """Wrap ``exporter``."""
        if not isinstance(exporter, SpanExporter):
            raise TypeError(f'exporter must be an opentelemetry SpanExporter, not {type(exporter).__name__}')
        self._exporter = exporter
        self._redact = redact_input_output
        self._sample_ratio = sample_ratio

    def _adjusted(self, span: ReadableSpan) -> ReadableSpan:
        is_error = span.status.status_code == StatusCode.ERROR
        attributes = adjust_span_attributes(span.attributes or {}, is_error, self._redact)
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=span.events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Adjust each span, then export through the wrapped exporter."""
        kept = [s for s in spans if s.context is None or _sampled(s.context.trace_id, self._sample_ratio)]
        return self._exporter.export([self._adjusted(span) for span in kept])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._exporter.force_flush(timeout_millis)


class NativeLogExporter:
    """genkit's dev-mode log export (``/api/otlp``, the Dev UI's log view) through the Rust exporter.

    Stands in for genkit's ``LogServerExporter``, whose worker thread wakes for every record
    (several per ``generate()``) and POSTs with the GIL held, competing with the app's thread.
    genkit still builds each record; this copies it into Rust and returns. Same records, same
    document shape.
    """

    def __init__(self, telemetry_server_url: str) -> None:
        """Export to ``<telemetry_server_url>/api/otlp``, as genkit does."""
        self.telemetry_server_url = telemetry_server_url
        self.stopped = False
        self.dropped = 0
        self._sink = LogSink(urljoin(telemetry_server_url, LOG_ENDPOINT), *_compat.genkit_log_scope())

    def enqueue(self, *, record: dict[str, object]) -> None:
        """Queue one OTLP log record (never blocks; a full queue drops and counts it)."""
        if not self.stopped and not self._sink.submit(record):
            self.dropped += 1

    def set_url(self, *, url: str) -> None:
        """Send to ``url`` from now on."""
        old, self._sink = self._sink, LogSink(urljoin(url, LOG_ENDPOINT), *_compat.genkit_log_scope())
        self.telemetry_server_url = url
        old.shutdown(SHUTDOWN_TIMEOUT_SECONDS)

    def force_flush(self, *, timeout_s: float = 30.0) -> bool:
        """Wait until queued records are delivered (or failed)."""
        return self._sink.flush(timeout_s)

    def shutdown(self) -> None:
        """Stop taking records; deliver what is queued within 2 seconds."""
        self.stopped = True
        self._sink.shutdown(SHUTDOWN_TIMEOUT_SECONDS)

    def stats(self) -> dict[str, Any]:
        """Counters: queued, dropped, processed, posts_ok, posts_failed, last_error."""
        return self._sink.stats()


def _take_over_log_export() -> None:
    replaced = _compat.replace_genkit_log_exporter(NativeLogExporter)
    if replaced is not None:
        replaced.shutdown()  # delivers what it had queued


class _Installed:
    """What genkit-parity added to the tracer provider."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.processor: RealtimeSpanProcessor | None = None
        self.extra: list[SpanProcessor] = []
        self.explicit = False


_installed = _Installed()


def _traces_url(server_url: str) -> str:
    url = server_url.strip()
    parsed = urlparse(urljoin(url, '/api/traces'))
    if parsed.scheme != 'http' or not parsed.netloc:
        raise ValueError(
            f'telemetry server URL must be an http:// URL with a host (the Dev UI server), got {server_url!r}'
        )
    return urljoin(url, '/api/traces')


def _default_realtime() -> bool:
    return (
        os.environ.get('GENKIT_ENV') == 'dev' and os.environ.get('GENKIT_ENABLE_REALTIME_TELEMETRY') == 'true'
    )


def enable_telemetry(config: TelemetryConfig | None = None) -> None:
    """Export traces to the Genkit telemetry server (and ``config.exporters``) from Rust.

    Replaces genkit's own telemetry-server processor and anything an earlier call installed.
    Without a server URL (argument or ``GENKIT_TELEMETRY_SERVER``) only ``config.exporters``
    are installed.

    Raises:
        TypeError: ``config`` is not a :class:`TelemetryConfig`.
        ValueError: a bad URL, ratio, capacity or timeout.

    Example:
        >>> # enable_telemetry(TelemetryConfig(server_url='http://127.0.0.1:4033', realtime=True))

    """
    config = TelemetryConfig() if config is None else config
    if not isinstance(config, TelemetryConfig):
        raise TypeError(f'config must be a TelemetryConfig, not {type(config).__name__}')
    if not 0.0 <= config.sample_ratio <= 1.0:
        raise ValueError(f'sample_ratio must be between 0 and 1, got {config.sample_ratio}')
    exporters = list(config.exporters)
    for exporter in exporters:
        if not isinstance(exporter, SpanExporter):
            raise TypeError(f'exporters must be opentelemetry SpanExporters, not {type(exporter).__name__}')
    server_url = (
        config.server_url if config.server_url is not None else os.environ.get('GENKIT_TELEMETRY_SERVER')
    )
    sink = None
    if server_url:
        sink = SpanSink(
            _traces_url(server_url),
            _default_realtime() if config.realtime is None else bool(config.realtime),
            queue_capacity=config.queue_capacity,
            request_timeout=config.request_timeout,
            sample_ratio=config.sample_ratio,
        )
    extra: list[SpanProcessor] = [
        BatchSpanProcessor(
            AdjustingSpanExporter(
                e, redact_input_output=config.redact_input_output, sample_ratio=config.sample_ratio
            )
            if config.adjust_exporters
            else e
        )
        for e in exporters
    ]
    provider = _compat.tracer_provider()
    with _installed.lock:
        _uninstall_locked(provider)
        if sink is not None:
            genkit_own = _compat.genkit_telemetry_processors(provider)
            _compat.remove_span_processors(provider, genkit_own)
            for processor in genkit_own:
                processor.shutdown()
            _installed.processor = RealtimeSpanProcessor(sink)
            provider.add_span_processor(_installed.processor)
        for processor in extra:
            provider.add_span_processor(processor)
        _installed.extra = extra
        _installed.explicit = True


def install_default() -> None:
    """What ``Genkit()``/``extend()`` do: take over genkit's telemetry-server export, once.

    Only where genkit itself exports: genkit installs its telemetry-server processor at
    import time in dev mode (``GENKIT_ENV=dev``) with ``GENKIT_TELEMETRY_SERVER`` set, and
    exports nothing otherwise, so without that processor nothing is installed here either
    (``GENKIT_TELEMETRY_SERVER`` alone, in production, must not send prompts and outputs
    anywhere). Does nothing as well when :func:`enable_telemetry` was called or when
    ``GENKIT_PARITY_TELEMETRY=genkit``.
    """
    if os.environ.get(OPT_OUT_ENV) == 'genkit' or not os.environ.get('GENKIT_TELEMETRY_SERVER'):
        return
    with _installed.lock:
        if _installed.explicit or _installed.processor is not None:
            return
    if not _compat.genkit_telemetry_processors(_compat.tracer_provider()):
        return
    try:
        enable_telemetry()
    except ValueError as error:
        logger.error("genkit-parity: keeping genkit's own trace exporter: %s", error)
        return
    with _installed.lock:
        _installed.explicit = False
    _take_over_log_export()


def _uninstall_locked(provider: Any) -> None:
    ours: list[SpanProcessor] = [*([_installed.processor] if _installed.processor else []), *_installed.extra]
    _compat.remove_span_processors(provider, ours)
    for processor in ours:
        processor.shutdown()
    _installed.processor = None
    _installed.extra = []


def _flush_all(timeout: float) -> bool:
    with _installed.lock:
        processors: list[SpanProcessor] = [
            *([_installed.processor] if _installed.processor else []),
            *_installed.extra,
        ]
    deadline = time.monotonic() + max(timeout, 0.0)
    flushed = True
    for processor in processors:  # one deadline shared by all of them
        left = max(0.0, deadline - time.monotonic())
        flushed = processor.force_flush(int(left * 1000)) and flushed
    return flushed


async def flush_tracing(timeout: float = 5.0) -> bool:
    """Wait until every span queued so far has been delivered, or ``timeout`` seconds pass.

    JS ``flushTracing()``. Returns True when everything went out (or failed) in time. The
    wait runs off the event loop and without the GIL.
    """
    if not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f'timeout must be a non-negative number of seconds, got {timeout!r}')
    return await asyncio.to_thread(_flush_all, float(timeout))


def cleanup_tracing() -> None:
    """Deliver what is queued, then remove genkit-parity's span processors.

    The telemetry-server exporter gets 2 s; extra exporters are shut down by their
    ``BatchSpanProcessor``, within its own export timeout.

    JS's ``cleanUpTracing``. genkit's own processor is not put back; call
    :func:`enable_telemetry` to export again.
    """
    provider = _compat.tracer_provider()
    with _installed.lock:
        _uninstall_locked(provider)
        _installed.explicit = True


def telemetry_stats() -> dict[str, Any] | None:
    """The telemetry-server exporter's counters, or None when it is not installed."""
    with _installed.lock:
        processor = _installed.processor
    return processor.stats() if processor is not None else None
