"""A network partition between a worker and Redis, through a TCP relay the test controls."""

from __future__ import annotations

import time

import pytest

from genkit_parity import RedisSessionStore, SessionStoreError

from ._engines import PrivateRedis, TcpProxy

pytestmark = pytest.mark.timeout(60)

MESSAGE = '{"role":"user","content":[{"text":"during the partition"}]}'


def turn(loaded: int) -> list[tuple[str, int, bool, list[str]]]:
    return [('main', loaded, False, [MESSAGE])]


async def test_partition_is_unavailable_in_time_and_the_retried_turn_is_stored_once():
    redis = PrivateRedis()
    redis.start()
    proxy = TcpProxy(redis.port)
    try:
        store = RedisSessionStore(f'redis://127.0.0.1:{proxy.port}/0', prefix='partition', timeout=1.0)
        first = await store._commit('s', turn_id='t0', expected_version=0, threads=turn(0))
        assert first.version == 1

        proxy.drop_replies = True
        started = time.monotonic()
        with pytest.raises(SessionStoreError) as failed:
            await store._commit('s', turn_id='t1', expected_version=1, threads=turn(1))
        elapsed = time.monotonic() - started
        assert failed.value.status == 'UNAVAILABLE'
        assert f'127.0.0.1:{proxy.port}' in str(failed.value)
        # Within the 1 s timeout: an unanswered attempt is bounded by it too (it waited the
        # fixed 2 s response timeout before).
        assert elapsed < 1.8, elapsed

        proxy.drop_replies = False
        # The same turn again: the server had applied it, so it is reported, not repeated.
        again = await store._commit('s', turn_id='t1', expected_version=1, threads=turn(1))
        assert again.version == 2
        data = await store.get('s')
        assert data is not None and len(data['threads']['main']) == 2
    finally:
        proxy.close()
        redis.stop()
