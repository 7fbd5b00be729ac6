"""A network partition between a worker and PostgreSQL, through a TCP relay the test controls."""

from __future__ import annotations

import time

import pytest

from genkit_parity import PostgresSessionStore, SessionStoreError

from ._engines import TcpProxy

pytestmark = pytest.mark.timeout(60)

MESSAGE = '{"role":"user","content":[{"text":"during the partition"}]}'


def turn(loaded: int) -> list[tuple[str, int, bool, list[str]]]:
    return [('main', loaded, False, [MESSAGE])]


async def test_partition_is_unavailable_in_time_and_the_retried_turn_is_stored_once(database):
    proxy = TcpProxy(5432)  # in front of the shared server; the test has its own database
    name = database.rsplit('/', 1)[1]
    try:
        store = PostgresSessionStore(
            f'postgresql://postgres@127.0.0.1:{proxy.port}/{name}', table_prefix='partition_', timeout=1.0
        )
        first = await store._commit('s', turn_id='t0', expected_version=0, threads=turn(0))
        assert first.version == 1

        proxy.drop_replies = True  # the server still gets the commit; its answer is lost
        started = time.monotonic()
        with pytest.raises(SessionStoreError) as failed:
            await store._commit('s', turn_id='t1', expected_version=1, threads=turn(1))
        elapsed = time.monotonic() - started
        assert failed.value.status == 'UNAVAILABLE'
        assert f'127.0.0.1:{proxy.port}' in str(failed.value)
        # The 1 s timeout bounds the unanswered attempt too (not the 10 s default).
        assert elapsed < 4.0, elapsed

        proxy.drop_replies = False
        # The same turn again: the server had applied it, so it is reported, not repeated.
        again = await store._commit('s', turn_id='t1', expected_version=1, threads=turn(1))
        assert (again.version, again.duplicate) == (2, True)
        data = await store.get('s')
        assert data is not None and len(data['threads']['main']) == 2
    finally:
        proxy.close()
