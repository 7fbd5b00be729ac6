"""Redis failure behaviour, on a private redis-server this test starts (never the shared one)."""

from __future__ import annotations

import time

import pytest

from genkit_parity import RedisSessionStore, SessionLostError, SessionStoreError

from ._engines import PrivateRedis
from .test_redis_sessions import make_ai, text

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server():
    redis = PrivateRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def test_restart_without_persistence_loses_the_session_loudly_and_reconnects(server):
    store = RedisSessionStore(server.url, prefix='restart', timeout=3.0)
    ai = make_ai()
    session = await ai.load_session('held', store=store)
    await session.chat().send('before')
    assert session.version == 1

    server.stop()
    server.start()  # same port, empty dataset

    started = time.monotonic()
    with pytest.raises(SessionLostError) as lost:
        await session.chat().send('after')
    assert lost.value.status == 'DATA_LOSS'
    assert lost.value.session_id == 'held'
    assert "'held'" in str(lost.value) or '"held"' in str(lost.value)
    # The client reconnected by itself (same store object), well within its retry budget.
    assert time.monotonic() - started < 3.0
    # Nothing partial was written: the session still reads as unknown, and starts over.
    assert await store.get('held') is None
    fresh = await ai.load_session('held', store=store)
    assert fresh.threads == {} and fresh.version == 0
    await fresh.chat().send('again')
    data = await store.get('held')
    assert data is not None and [text(m) for m in data['threads']['main']][::2] == ['again']


async def test_server_down_is_unavailable_within_the_timeout(server):
    store = RedisSessionStore(server.url, prefix='down', timeout=0.5)
    await store.get('s')  # connected
    server.stop()
    started = time.monotonic()
    with pytest.raises(SessionStoreError) as failed:
        await store.get('s')
    assert failed.value.status == 'UNAVAILABLE'
    assert f'127.0.0.1:{server.port}' in str(failed.value)
    assert time.monotonic() - started < 4.0
