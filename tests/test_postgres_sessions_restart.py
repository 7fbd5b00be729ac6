"""PostgreSQL restarted mid-run, on a private cluster this test starts (never the shared one)."""

from __future__ import annotations

import time

import pytest

from genkit_parity import PostgresSessionStore

from ._engines import PrivatePostgres, spawn
from .test_redis_sessions import check_turns

pytestmark = pytest.mark.timeout(240)

WRITER = """
import time
dsn, name, turns = sys.argv[1:4]

async def main():
    ai = make_ai()
    store = make_store('postgres', dsn, timeout=15.0)
    session = await ai.load_session('restart', store=store)
    for i in range(int(turns)):
        await session.chat().send(f'{name}-{i}')
        print('acked', i, time.time(), flush=True)
        await asyncio.sleep(0.01)
    print(json.dumps({'done': True}))

asyncio.run(main())
"""


@pytest.fixture
def server():
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


async def test_restart_mid_run_keeps_every_acknowledged_turn_whole(server):
    names, turns = ['A', 'B', 'C', 'D'], 40
    writers = [spawn(WRITER, server.dsn, name, str(turns)) for name in names]
    acks: dict[str, list[float]] = {name: [] for name in names}
    # Let every writer acknowledge some turns, then restart the server under them.
    for name, writer in zip(names, writers, strict=True):
        assert writer.stdout is not None
        while len(acks[name]) < 5:
            line = writer.stdout.readline()
            assert line, writer.stderr.read() if writer.stderr else 'writer died'
            acks[name].append(float(line.split()[2]))
    server.stop('fast')
    server.start()
    back = time.time()
    for name, writer in zip(names, writers, strict=True):
        assert writer.stdout is not None
        with writer:
            for line in writer.stdout:
                if line.startswith('acked'):
                    acks[name].append(float(line.split()[2]))
            writer.wait(timeout=120)
            assert writer.returncode == 0, writer.stderr.read() if writer.stderr else ''
        assert len(acks[name]) == turns
        # The writer resumed within 5 s of the server coming back.
        after = [t for t in acks[name] if t > back]
        assert after and after[0] < back + 5, (name, after[:1], back)

    store = PostgresSessionStore(server.dsn)
    data = await store.get('restart')
    assert data is not None
    # Every acknowledged turn present exactly once, no half turn, in each writer's order.
    check_turns(data['threads']['main'], names, turns)
