"""Sessions on Redis and PostgreSQL: ours vs what a Python user writes with the engines' clients.

Baselines:
- Redis: the OpenAI Agents SDK ``RedisSession`` pattern with redis-py (asyncio): a LIST of
  message JSON per session, each turn ``WATCH`` a counter, ``MULTI``, ``RPUSH`` the
  messages, ``HSET`` the meta, ``EXEC`` (retried on a WatchError); cold load ``LRANGE`` and
  ``json.loads`` per message.
- PostgreSQL: a psycopg 3 (async) row-per-message store: one transaction per turn locking the
  session row ``FOR UPDATE``, ``max(seq)``, ``executemany`` INSERT, ``UPDATE``; cold load
  ``SELECT ... ORDER BY seq`` of ``jsonb`` rows (psycopg decodes them).

Both sides do the same work: a turn's save starts from the same genkit ``Message``
objects and serialises them (``model_dump_json``, as our session does), each side holds the
history and builds the grown list before a turn (untimed), and a cold load
returns the messages as plain dicts (``json.loads`` there, the core's parser here).

Measured: one turn's save (2 new messages) and a cold load of the whole session, at
10, 1k and 10k stored messages; and 4 writer processes x 50 turns on one session (turns/s,
lost messages counted). Needs the machine's Redis and PostgreSQL (``make services``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Any

from _stats import ratios, summary

SIZES = [int(s) for s in os.environ.get('BENCH_DISTRIBUTED_SIZES', '10,1000,10000').split(',')]
RUNS = int(os.environ.get('BENCH_DISTRIBUTED_RUNS', '5'))
TURNS = int(os.environ.get('BENCH_DISTRIBUTED_TURNS', '50'))
WRITER_TURNS = int(os.environ.get('BENCH_DISTRIBUTED_WRITER_TURNS', '50'))
# 'redis-save': only the Redis rows (save and load), no PostgreSQL and no writers; for A/B
# runs of a change to the Redis save, one process per side, interleaved by the caller.
ONLY = os.environ.get('BENCH_DISTRIBUTED_ONLY', '')
REDIS_URL = 'redis://127.0.0.1:6379/0'
PG_ADMIN = 'postgresql://postgres@127.0.0.1:5432/postgres'


def message(i: int) -> dict[str, Any]:
    role = 'user' if i % 2 == 0 else 'model'
    return {'role': role, 'content': [{'text': f'message {i}: ' + 'lorem ipsum dolor sit amet ' * 4}]}


def to_json(message: Any) -> str:
    """A genkit Message as the JSON text a store keeps (what both sides write)."""
    text: str = message.model_dump_json(by_alias=True, exclude_none=True)
    return text


# -- baselines -------------------------------------------------------------------------


class RedisPyStore:
    """The OpenAI Agents SDK RedisSession pattern (WATCH/MULTI + RPUSH)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    async def append(self, sid: str, messages: list[Any]) -> None:
        import redis.asyncio as aioredis

        base = f'{self.prefix}:session:{sid}'
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(f'{base}:counter')
                    pipe.multi()
                    pipe.rpush(f'{base}:messages', *[to_json(m) for m in messages])
                    pipe.hset(base, mapping={'updated_at': str(time.time())})
                    pipe.incr(f'{base}:counter')
                    await pipe.execute()
                    return
                except aioredis.WatchError:
                    continue

    async def load(self, sid: str) -> list[dict[str, Any]]:
        raw = await self.client.lrange(f'{self.prefix}:session:{sid}:messages', 0, -1)
        return [json.loads(m) for m in raw]


class PsycopgStore:
    """Row per message with psycopg 3: FOR UPDATE on the session row, then insert with seq."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @staticmethod
    async def create(dsn: str) -> PsycopgStore:
        import psycopg

        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        await conn.execute(
            'CREATE TABLE IF NOT EXISTS bench_sessions (id text PRIMARY KEY, version bigint NOT NULL DEFAULT 0)'
        )
        await conn.execute(
            'CREATE TABLE IF NOT EXISTS bench_messages (session_id text, seq int, message jsonb, '
            'PRIMARY KEY (session_id, seq))'
        )
        return PsycopgStore(conn)

    async def append(self, sid: str, messages: list[Any]) -> None:
        async with self.conn.transaction():
            await self.conn.execute(
                'INSERT INTO bench_sessions (id) VALUES (%s) ON CONFLICT DO NOTHING', (sid,)
            )
            await self.conn.execute('SELECT version FROM bench_sessions WHERE id = %s FOR UPDATE', (sid,))
            cur = await self.conn.execute(
                'SELECT coalesce(max(seq) + 1, 0) FROM bench_messages WHERE session_id = %s', (sid,)
            )
            row = await cur.fetchone()
            start = row[0] if row else 0
            async with self.conn.cursor() as cursor:
                await cursor.executemany(
                    'INSERT INTO bench_messages (session_id, seq, message) VALUES (%s, %s, %s::jsonb)',
                    [(sid, start + i, to_json(m)) for i, m in enumerate(messages)],
                )
            await self.conn.execute('UPDATE bench_sessions SET version = version + 1 WHERE id = %s', (sid,))

    async def load(self, sid: str) -> list[dict[str, Any]]:
        cur = await self.conn.execute(
            'SELECT message FROM bench_messages WHERE session_id = %s ORDER BY seq', (sid,)
        )
        return [row[0] for row in await cur.fetchall()]


# -- ours ------------------------------------------------------------------------------


async def ours_turns(store: Any, sid: str, size: int, turns: int) -> tuple[float, float]:
    """Per-turn save and cold load times, through the Session a chat uses."""
    from genkit import Message

    from genkit_parity import Genkit

    ai = Genkit()
    session = await ai.load_session(sid, store=store)
    history = [Message.model_validate(message(i)) for i in range(size)]
    await session.update_messages('main', history)
    messages = list(session.threads['main'])
    elapsed = 0.0
    for t in range(turns):
        grown = messages + [Message.model_validate(message(size + 2 * t + k)) for k in range(2)]
        began = time.perf_counter()
        await session._commit_thread('main', grown, first_new=len(messages))
        elapsed += time.perf_counter() - began
        messages = grown
    # A cold load: the process no longer holds the history (a fresh worker's state; held,
    # it would make every garbage collection during the baseline's load walk it).
    del session, history, messages, grown
    began = time.perf_counter()
    data = await store.get(sid)
    load = time.perf_counter() - began
    assert data is not None and len(data['threads']['main']) == size + 2 * turns
    return elapsed / turns, load


async def baseline_turns(store: Any, sid: str, size: int, turns: int) -> tuple[float, float]:
    from genkit import Message

    messages = [Message.model_validate(message(i)) for i in range(size)]
    await store.append(sid, messages)
    elapsed = 0.0
    for t in range(turns):
        # The app holds the history, as a chat does and as ours_turns does: building the
        # grown list touches every message (evicting caches before the timed save), so
        # both sides do it, untimed.
        grown = messages + [Message.model_validate(message(size + 2 * t + k)) for k in range(2)]
        began = time.perf_counter()
        await store.append(sid, grown[len(messages) :])
        elapsed += time.perf_counter() - began
        messages = grown
    del messages, grown  # a cold load, as in ours_turns
    began = time.perf_counter()
    loaded = await store.load(sid)
    load = time.perf_counter() - began
    assert len(loaded) == size + 2 * turns
    return elapsed / turns, load


def turns_for(size: int) -> int:
    return TURNS if size <= 1000 else max(10, TURNS // 2)


async def measure_single(dsn: str) -> dict[str, dict[int, dict[str, list[float]]]]:
    import psycopg  # noqa: F401  (fail early when the bench pins are missing)
    import redis.asyncio as aioredis

    from genkit_parity import PostgresSessionStore, RedisSessionStore

    results: dict[str, dict[int, dict[str, list[float]]]] = {'redis': {}, 'postgres': {}}
    client = aioredis.from_url(REDIS_URL)
    psy = None if ONLY == 'redis-save' else await PsycopgStore.create(dsn)
    prefix = f'bench-{uuid.uuid4().hex[:8]}'
    ours_redis = RedisSessionStore(REDIS_URL, prefix=prefix)
    ours_pg = None if ONLY == 'redis-save' else PostgresSessionStore(dsn)
    try:
        for size in SIZES:
            turns = turns_for(size)
            for engine in ('redis',) if ONLY == 'redis-save' else ('redis', 'postgres'):
                cell = results[engine].setdefault(
                    size, {'ours_save': [], 'base_save': [], 'ours_load': [], 'base_load': []}
                )
                for run in range(RUNS):
                    sid = f's{size}-{run}-{uuid.uuid4().hex[:6]}'
                    ours_store = ours_redis if engine == 'redis' else ours_pg
                    base_store = RedisPyStore(client, prefix) if engine == 'redis' else psy
                    save, load = await ours_turns(ours_store, sid, size, turns)
                    cell['ours_save'].append(save)
                    cell['ours_load'].append(load)
                    save, load = await baseline_turns(base_store, sid, size, turns)
                    cell['base_save'].append(save)
                    cell['base_load'].append(load)
    finally:
        keys = [k async for k in client.scan_iter(f'{prefix}:*')]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
        await client.aclose()
        if psy is not None:
            await psy.conn.close()
    if ONLY == 'redis-save':
        del results['postgres']
    return results


WRITER = """
import asyncio, json, sys, time
engine, location, sid, name, turns = sys.argv[1:6]
turns = int(turns)

def ready():
    # Imports and connections are done: wait for the common start signal.
    print('ready', flush=True)
    sys.stdin.readline()

def msg(text, role):
    return {'role': role, 'content': [{'text': text}]}

async def ours():
    from genkit import Message
    from genkit_parity import Genkit, PostgresSessionStore, RedisSessionStore
    store = RedisSessionStore('redis://127.0.0.1:6379/0', prefix=location) if engine == 'ours-redis' else PostgresSessionStore(location)
    session = await Genkit().load_session(sid, store=store)
    ready()
    for i in range(turns):
        held = list(session.threads.get('main', []))
        new = [Message.model_validate(msg(f'{name}-{i}', 'user')), Message.model_validate(msg(f're {name}-{i}', 'model'))]
        await session._commit_thread('main', held + new, first_new=len(held))

async def baseline():
    sys.path.insert(0, sys.argv[6])
    from bench_distributed import PsycopgStore, RedisPyStore
    if engine == 'redis-py':
        import redis.asyncio as aioredis
        store = RedisPyStore(aioredis.from_url('redis://127.0.0.1:6379/0'), location)
    else:
        store = await PsycopgStore.create(location)
    from genkit import Message
    ready()
    for i in range(turns):
        new = [msg(f'{name}-{i}', 'user'), msg(f're {name}-{i}', 'model')]
        await store.append(sid, [Message.model_validate(m) for m in new])

asyncio.run(ours() if engine.startswith('ours') else baseline())
print('done', flush=True)
"""


def run_writers(engine: str, location: str, sid: str) -> float:
    code = textwrap.dedent(WRITER)
    here = os.path.dirname(os.path.abspath(__file__))
    procs = [
        subprocess.Popen(
            [sys.executable, '-c', code, engine, location, sid, f'w{w}', str(WRITER_TURNS), here],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == 'ready\n', (
            f'{engine} writer failed to start'
        )
    began = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write('go\n')
        proc.stdin.flush()
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == 'done\n', f'{engine} writer failed'
    # Timed to the last writer's last turn, not to interpreter shutdown.
    elapsed = time.perf_counter() - began
    for proc in procs:
        assert proc.wait(timeout=600) == 0, f'{engine} writer failed'
    return elapsed


async def count_messages(engine: str, location: str, sid: str) -> int:
    if engine.startswith('ours'):
        from genkit_parity import PostgresSessionStore, RedisSessionStore

        store: Any = (
            RedisSessionStore(REDIS_URL, prefix=location)
            if engine == 'ours-redis'
            else PostgresSessionStore(location)
        )
        data = await store.get(sid)
        return 0 if data is None else len(data['threads']['main'])
    if engine == 'redis-py':
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        try:
            return int(await client.llen(f'{location}:session:{sid}:messages'))
        finally:
            await client.aclose()
    psy = await PsycopgStore.create(location)
    try:
        return len(await psy.load(sid))
    finally:
        await psy.conn.close()


def measure_writers(dsn: str) -> dict[str, tuple[list[float], list[int]]]:
    prefix = f'bench-w-{uuid.uuid4().hex[:8]}'
    out: dict[str, tuple[list[float], list[int]]] = {}
    for engine in ('ours-redis', 'redis-py', 'ours-postgres', 'psycopg'):
        location = prefix if engine in ('ours-redis', 'redis-py') else dsn
        rates, lost = [], []
        for run in range(RUNS):
            sid = f'w-{run}-{uuid.uuid4().hex[:6]}'
            seconds = run_writers(engine, location, sid)
            rates.append(4 * WRITER_TURNS / seconds)
            lost.append(8 * WRITER_TURNS - asyncio.run(count_messages(engine, location, sid)))
        out[engine] = (rates, lost)
    subprocess.run(
        f"redis-cli -h 127.0.0.1 --scan --pattern '{prefix}:*' | xargs -r redis-cli -h 127.0.0.1 DEL",
        shell=True,
        check=False,
        capture_output=True,
    )
    return out


def report(
    single: dict[str, dict[int, dict[str, list[float]]]], writers: dict[str, tuple[list[float], list[int]]]
) -> str:
    lines = [
        '## Sessions past one machine: Redis and PostgreSQL',
        '',
        f'Median of {RUNS} runs (min–max). Per-turn save of 2 new messages and a cold load of the whole '
        'session, in µs; ratio = baseline time / ours, per run. Baselines: redis-py WATCH/MULTI + RPUSH '
        '(OpenAI Agents SDK RedisSession pattern), psycopg 3 row-per-message with FOR UPDATE.',
        '',
        '| engine | history | save: ours | save: baseline | save speed-up | load: ours | load: baseline | load speed-up |',
        '|---|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for engine, by_size in single.items():
        for size, cell in by_size.items():
            micro = {k: [v * 1e6 for v in vs] for k, vs in cell.items()}
            lines.append(
                f'| {engine} | {size:,} | {summary(micro["ours_save"])} | {summary(micro["base_save"])} '
                f'| {summary(ratios(cell["base_save"], cell["ours_save"]), "×")} '
                f'| {summary(micro["ours_load"], digits=0)} | {summary(micro["base_load"], digits=0)} '
                f'| {summary(ratios(cell["base_load"], cell["ours_load"]), "×")} |'
            )
    if not writers:
        return '\n'.join(lines) + '\n'
    lines += [
        '',
        f'4 writer processes × {WRITER_TURNS} turns on one session (timed from a common start signal, '
        'after imports and connections): '
        'turns per second, and messages lost (expected 0).',
        '',
        '| writer | turns/s | messages lost |',
        '|---|---:|---:|',
    ]
    for engine, (rates, lost) in writers.items():
        lines.append(
            f'| {engine} | {summary(rates, digits=0)} | {max(lost)} (of {8 * WRITER_TURNS} per run) |'
        )
    return '\n'.join(lines) + '\n'


def main() -> str:
    if ONLY == 'redis-save':
        return report(asyncio.run(measure_single('')), {})
    name = f'gp_bench_{uuid.uuid4().hex[:8]}'
    subprocess.run(
        ['psql', '-h', '127.0.0.1', '-U', 'postgres', '-qc', f'CREATE DATABASE {name}'], check=True
    )
    dsn = f'postgresql://postgres@127.0.0.1:5432/{name}'
    try:
        single = asyncio.run(measure_single(dsn))
        writers = measure_writers(dsn)
    finally:
        subprocess.run(
            [
                'psql',
                '-h',
                '127.0.0.1',
                '-U',
                'postgres',
                '-qc',
                f'DROP DATABASE IF EXISTS {name} WITH (FORCE)',
            ],
            check=False,
        )
    return report(single, writers)


if __name__ == '__main__':
    print(main())
