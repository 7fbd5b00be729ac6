"""The one module that touches genkit's private internals (genkit 0.12.x).

Everything genkit-parity needs from genkit beyond its public API goes through the names
below, so supporting another genkit line means another version of this file, not a fork.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from genkit._ai._agents._session import get_current_session as _agent_session
from genkit._core._tracing import SpanMetadata, run_in_new_span

__all__ = ['agent_session', 'helper_span']


def agent_session() -> Any | None:
    """The genkit.exp agent session running in this context, if any."""
    return _agent_session()


@contextlib.contextmanager
def helper_span(name: str, *, labels: Mapping[str, str], input: Any) -> Iterator[Any]:
    """Open a Genkit span of type ``helper`` (as JS ``chat.send`` does).

    ``labels`` become span attributes verbatim (``genkit:sessionId`` ...); ``input`` is
    recorded as ``genkit:input``. Yields the OpenTelemetry span, on which the caller sets
    ``genkit:output``.
    """
    metadata = SpanMetadata(name=name, type='helper', input=input, telemetry_labels=dict(labels))
    with run_in_new_span(metadata) as span:
        yield span


def set_span_output(span: Any, output: str) -> None:
    """Record ``genkit:output`` on a span opened by :func:`helper_span`."""
    span.set_attribute('genkit:output', output)


def to_span_json(value: Any) -> str:
    """JSON for a span attribute; pydantic models are dumped as Genkit dumps them."""
    dump = getattr(value, 'model_dump_json', None)
    if callable(dump):
        return str(dump(by_alias=True, exclude_none=True))
    return json.dumps(value, default=str)
