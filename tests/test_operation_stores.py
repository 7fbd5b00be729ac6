"""Operations checkable from any worker: Redis and PostgreSQL operation stores, across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genkit_parity import (
    CorruptOperationError,
    Genkit,
    NotFoundError,
    PostgresOperationStore,
    RedisOperationStore,
    extend,
)
from genkit_parity.background import OperationStore

from ._engines import REDIS_URL, WORKER_PRELUDE, finish, spawn

pytestmark = pytest.mark.timeout(120)


def make_store(engine: tuple[str, str], ttl: float = 86400, lease: float | None = None) -> OperationStore:
    kind, location = engine
    if kind == 'redis':
        return RedisOperationStore(REDIS_URL, prefix=location, ttl=ttl, lease=lease)
    return PostgresOperationStore(location, ttl=ttl, lease=lease)


# A job whose provider state is a file: "done" once the file says so; every provider
# check is logged, so the test can count them.
WORKER = """
from pathlib import Path
from genkit_parity import Genkit, PostgresOperationStore, RedisOperationStore
engine, location, workdir, role, arg = sys.argv[1:6]
work = Path(workdir)

def store():
    if engine == 'redis':
        return RedisOperationStore('redis://127.0.0.1:6379/0', prefix=location)
    return PostgresOperationStore(location)

async def main():
    ai = Genkit(operation_store=store())
    def start(input):
        return {'id': f'job-{input}', 'done': False, 'metadata': {'by': 'A'}}
    def check(op):
        with open(work / 'checks', 'a') as log:
            log.write('check\\n')
        if (work / 'finished').exists():
            return {'id': op.id, 'done': True, 'output': {'video': 'v.mp4'}}
        return {'id': op.id, 'done': False, 'metadata': {'progress': 1}}
    job = ai.define_background_action('render', start=start, check=check)
    if role == 'start':
        op = await job.start(arg)
        print(json.dumps(op.model_dump(by_alias=True, exclude_none=True)))
    else:
        op = await ai.check_operation(arg)
        print(json.dumps(op.model_dump(by_alias=True, exclude_none=True)))

asyncio.run(main())
"""


def run(engine: tuple[str, str], workdir: Path, role: str, arg: str) -> dict[str, object]:
    kind, location = engine
    (result,) = finish([spawn(WORKER, kind, location, str(workdir), role, arg)])
    assert isinstance(result, dict)
    return result


def checks(workdir: Path) -> int:
    log = workdir / 'checks'
    return len(log.read_text().splitlines()) if log.exists() else 0


async def test_any_worker_checks_an_operation_another_started(engine, tmp_path):
    started = run(engine, tmp_path, 'start', '1')
    assert (started['id'], started['done'], started['metadata']) == ('job-1', False, {'by': 'A'})
    assert str(started['action']).endswith('/render')
    store = make_store(engine)
    stored = await store.get('job-1')
    assert stored is not None and stored.action == started['action']

    # Worker B knows only the id.
    seen = run(engine, tmp_path, 'check', 'job-1')
    assert (seen['id'], seen['done'], seen['action']) == ('job-1', False, started['action'])
    assert checks(tmp_path) == 1

    (tmp_path / 'finished').touch()
    done = run(engine, tmp_path, 'check', 'job-1')
    assert done['done'] is True and done['output'] == {'video': 'v.mp4'}
    assert checks(tmp_path) == 2

    # A stale not-done write (a slow worker's old poll) never reverts it.
    kept = await store.put({'id': 'job-1', 'action': started['action'], 'done': False})
    assert kept.done is True
    # A done operation comes from the store: the provider is not asked again.
    again = run(engine, tmp_path, 'check', 'job-1')
    assert again['done'] is True
    assert checks(tmp_path) == 2


async def test_unknown_or_expired_ids_are_not_found(engine):
    store = make_store(engine, ttl=0.5)
    ai = extend(Genkit(), operation_store=store)
    ai.define_background_action('noop', start=lambda _: {'id': 'short', 'done': False}, check=lambda op: op)
    with pytest.raises(NotFoundError) as missing:
        await ai.check_operation('never-started')
    assert missing.value.status == 'NOT_FOUND'
    await store.put({'id': 'short', 'action': '/background-model/noop', 'done': False})
    assert await store.get('short') is not None
    await asyncio.sleep(1.0)
    assert await store.get('short') is None
    with pytest.raises(NotFoundError):
        await ai.wait_for_operation('short', timeout=1)


async def test_a_record_written_by_something_else_is_data_loss_never_a_state(engine):
    store = make_store(engine)
    ai = extend(Genkit(), operation_store=store)
    ai.define_background_action('noop', start=lambda _: {'id': 'x', 'done': False}, check=lambda op: op)
    kind, location = engine
    # '"done": "yes"' would otherwise read as done (the provider never asked again).
    for n, record in enumerate(
        ['not json', '42', '{"id": "OTHER", "done": true}', '{"id": "ID", "done": "yes"}']
    ):
        op_id = f'tampered-{n}'
        text = record.replace('"ID"', f'"{op_id}"')
        await store.put({'id': op_id, 'action': '/background-model/noop', 'done': False})
        if kind == 'redis':
            subprocess.run(
                ['redis-cli', '-h', '127.0.0.1', 'SET', f'{location}:op:{{{op_id}}}', text],
                check=True,
                capture_output=True,
            )
        else:
            value = f"'{text}'::json" if text != 'not json' else "to_json('not json'::text)"
            subprocess.run(
                [
                    'psql',
                    location,
                    '-qAtc',
                    f"UPDATE genkit_operations SET operation = {value} WHERE id = '{op_id}'",
                ],
                check=True,
                capture_output=True,
            )
        for read in (store.get, ai.check_operation):
            with pytest.raises(CorruptOperationError) as corrupt:
                await read(op_id)
            assert corrupt.value.status == 'DATA_LOSS' and corrupt.value.operation_id == op_id


async def test_an_id_that_starts_with_a_brace_is_checked_by_id(engine):
    store = make_store(engine)
    ai = extend(Genkit(), operation_store=store)
    guid = '{3F2504E0-4F89-11D3-9A0C-0305E82C3301}'  # a GUID-style id, not JSON
    action = ai.define_background_action(
        'guid',
        start=lambda _: {'id': guid, 'done': False},
        check=lambda op: {**op.model_dump(), 'done': True},
    )
    started = await action.start({})
    assert started.id == guid
    checked = await ai.check_operation(guid)
    assert checked.id == guid and checked.done is True
    assert (await store.get(guid)).done is True
    with pytest.raises(NotFoundError):
        await ai.check_operation('{00000000-0000-0000-0000-000000000000}')


def test_bad_operation_store_options():
    with pytest.raises(TypeError, match='operation_store'):
        Genkit(operation_store=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='ttl'):
        RedisOperationStore(REDIS_URL, ttl=0)
    with pytest.raises(ValueError, match='table_prefix'):
        PostgresOperationStore('postgresql://postgres@127.0.0.1/postgres', table_prefix='Bad-Name')
    with pytest.raises(ValueError, match='lease'):
        RedisOperationStore(REDIS_URL, lease=0)
    with pytest.raises(ValueError, match='ttl must be a positive number of seconds below 1e9'):
        PostgresOperationStore('postgresql://postgres@127.0.0.1/postgres', ttl=2e9)
    with pytest.raises(ValueError, match='lease must be a positive number of seconds below 1e9'):
        RedisOperationStore(REDIS_URL, lease=float('inf'))
    with pytest.raises(TypeError, match='lease'):
        PostgresOperationStore('postgresql://postgres@127.0.0.1/postgres', lease='5')  # type: ignore[arg-type]


# Checks one operation when told to (all workers at once), with a poll lease.
LEASE_WORKER = """
from pathlib import Path
from genkit_parity import Genkit, PostgresOperationStore, RedisOperationStore
engine, location, workdir, lease = sys.argv[1:5]
work = Path(workdir)

async def main():
    if engine == 'redis':
        store = RedisOperationStore('redis://127.0.0.1:6379/0', prefix=location, lease=float(lease))
    else:
        store = PostgresOperationStore(location, lease=float(lease))
    ai = Genkit(operation_store=store)
    def check(op):
        with open(work / 'checks', 'a') as log:
            log.write('check\\n')
        return {'id': op.id, 'done': False, 'metadata': {'progress': 1}}
    ai.define_background_action('render', start=lambda _: {'id': 'leased', 'done': False}, check=check)
    await store.get('leased')  # connected (and schema made) before the common start
    print('ready', flush=True)
    sys.stdin.readline()
    op = await ai.check_operation('leased')
    print(json.dumps({'done': op.done}))

asyncio.run(main())
"""


async def test_a_lease_lets_one_of_many_workers_poll_the_provider(engine, tmp_path):
    kind, location = engine
    ai = Genkit(operation_store=make_store(engine))
    job = ai.define_background_action(
        'render', start=lambda _: {'id': 'leased', 'done': False}, check=lambda op: op
    )
    await job.start('x')
    code = WORKER_PRELUDE + textwrap.dedent(LEASE_WORKER)
    workers = [
        subprocess.Popen(
            [sys.executable, '-u', '-c', code, kind, location, str(tmp_path), '60'],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == 'ready\n'
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write('go\n')
        worker.stdin.flush()
    results = finish(workers)
    # Four concurrent checks, one lease period: the provider was asked once; the other
    # workers answered with the stored (not done) state.
    assert checks(tmp_path) == 1
    assert results == [{'done': False}] * 4


async def test_a_lease_allows_one_provider_call_per_period(engine):
    store = make_store(engine, lease=0.5)
    assert store.lease == 0.5
    ai = Genkit(operation_store=store)
    calls = []

    def check(op):
        calls.append(op.id)
        return {'id': op.id, 'done': False}

    job = ai.define_background_action('poll', start=lambda _: {'id': 'periodic', 'done': False}, check=check)
    await job.start('x')
    await asyncio.gather(*[ai.check_operation('periodic') for _ in range(5)])
    assert len(calls) == 1
    await asyncio.sleep(0.7)  # the lease lapsed: the next check polls again
    await asyncio.gather(*[ai.check_operation('periodic') for _ in range(5)])
    assert len(calls) == 2
    # Without a lease every check polls.
    free = Genkit(operation_store=make_store(engine))
    free.define_background_action('poll', start=lambda _: {'id': 'periodic', 'done': False}, check=check)
    await asyncio.gather(*[free.check_operation('periodic') for _ in range(3)])
    assert len(calls) == 5
