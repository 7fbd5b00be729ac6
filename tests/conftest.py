"""Shared helpers. The ``ai`` / ``programmable_model`` fixtures come from genkit-parity's
own pytest plugin (``genkit_parity.testing.pytest_plugin``), as a user would get them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from genkit_parity import InMemorySessionStore

from ._engines import pg_database, redis_prefix


class CapturingStore:
    """A custom (pure-Python) store in JS ``SessionStore`` shape that records saves."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.saves: list[tuple[str, Any]] = []

    async def get(self, session_id: str) -> Any:
        return self.data.get(session_id)

    async def save(self, session_id: str, data: Any) -> None:
        self.saves.append((session_id, data))
        self.data[session_id] = data


@pytest.fixture
def capturing_store() -> CapturingStore:
    return CapturingStore()


@pytest.fixture
def memory_store() -> InMemorySessionStore:
    return InMemorySessionStore()


@pytest.fixture(scope='module')
def database() -> Iterator[str]:
    """A fresh PostgreSQL database on the shared server for the module (dropped afterwards)."""
    with pg_database() as dsn:
        yield dsn


@pytest.fixture(params=['redis', 'postgres'])
def engine(request: pytest.FixtureRequest, database: str) -> Iterator[tuple[str, str]]:
    """(engine, location): a fresh Redis key prefix, or the module's PostgreSQL database."""
    if request.param == 'redis':
        with redis_prefix() as prefix:
            yield 'redis', prefix
    else:
        yield 'postgres', database


@pytest.fixture
def spans():
    """An in-memory exporter receiving every span finished during the test."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def dump(messages: Any) -> list[dict[str, Any]]:
    """Messages as plain JSON data (as JS stores them)."""
    return [m.model_dump(mode='json', by_alias=True, exclude_none=True) for m in messages]


def texts(messages: Any) -> list[str]:
    """Each message's text parts joined."""
    return [''.join(p.text or '' for p in m.content) for m in messages]
