"""Sessions shared by many processes, on Redis and on PostgreSQL (the real servers).

The acceptance scenarios of the distributed-stores spec: several worker processes on one
session lose nothing, keep every turn whole and in each worker's order, and count versions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from genkit import GenkitError

from genkit_parity import (
    CorruptSessionError,
    Genkit,
    PostgresSessionStore,
    RedisSessionStore,
    SessionConflictError,
    SessionLostError,
    SessionStoreError,
)
from genkit_parity.stores import SharedSessionStore
from genkit_parity.testing import define_programmable_model

from ._engines import REDIS_URL, finish, psql, redis_prefix, spawn

pytestmark = pytest.mark.timeout(300)


_counter = iter(range(10**6))


@pytest.fixture
def redis_location() -> Iterator[str]:
    with redis_prefix() as prefix:
        yield prefix


def make_store(engine: tuple[str, str], **options: Any) -> SharedSessionStore:
    kind, location = engine
    prefix = options.pop('table_prefix', 'genkit_')
    if kind == 'redis':
        # Tests sharing the prefix fixture keep apart by their own sub-prefix.
        return RedisSessionStore(REDIS_URL, prefix=f'{location}:{prefix}', **options)
    # Every test gets its own tables in the module's database.
    return PostgresSessionStore(location, table_prefix=prefix, **options)


def make_ai() -> Genkit:
    ai = Genkit(model='programmableModel')
    define_programmable_model(
        ai,
        respond=lambda request, send_chunk: (
            f're {request.messages[-1].content[0].text} saw {len(request.messages)}'
        ),
    )
    return ai


def text(message: dict[str, Any]) -> str:
    return str(message['content'][0]['text'])


CHAT_WORKER = """
engine, location, sid, name, turns, on_conflict, thread, table_prefix = sys.argv[1:9]
extra = {} if engine == 'redis' else {'table_prefix': table_prefix}
location = f'{location}:{table_prefix}' if engine == 'redis' else location

async def main():
    ai = make_ai()
    store = make_store(engine, location, on_conflict, **extra)
    conflicts = 0
    session = await ai.load_session(sid, store=store)
    for i in range(int(turns)):
        while True:
            try:
                await session.chat(thread).send(f'{name}-{i}')
                break
            except SessionConflictError:
                conflicts += 1
                session = await ai.load_session(sid, store=store)
        print('acked', i, flush=True)
    print(json.dumps({'conflicts': conflicts}))

asyncio.run(main())
"""


def table_prefix() -> str:
    return f't{next(_counter)}_{os.getpid()}_'


def spawn_chat(
    engine: tuple[str, str],
    prefix: str,
    sid: str,
    name: str,
    turns: int,
    on_conflict: str,
    thread: str = 'main',
):
    kind, location = engine
    return spawn(CHAT_WORKER, kind, location, sid, name, str(turns), on_conflict, thread, prefix)


def check_turns(messages: list[dict[str, Any]], names: list[str], turns: int) -> None:
    """Every user message is followed by its own reply; each writer's turns are in its order."""
    assert len(messages) == 2 * len(names) * turns
    assert [m['role'] for m in messages] == ['user', 'model'] * (len(names) * turns)
    for user, model in zip(messages[::2], messages[1::2], strict=True):
        assert text(model).startswith(f're {text(user)} saw '), (user, model)
    for name in names:
        prompts = [text(m) for m in messages[::2] if text(m).startswith(f'{name}-')]
        assert prompts == [f'{name}-{i}' for i in range(turns)]


async def test_four_processes_on_one_thread_lose_nothing(engine):
    prefix = table_prefix()
    names = ['A', 'B', 'C', 'D']
    finish([spawn_chat(engine, prefix, 'shared', name, 50, 'append') for name in names])
    store = make_store(engine, table_prefix=prefix)
    session = await make_ai().load_session('shared', store=store)
    assert session.version == 200
    data = await store.get('shared')
    assert data is not None
    check_turns(data['threads']['main'], names, 50)


async def test_strict_mode_every_turn_saw_every_earlier_turn(engine):
    prefix = table_prefix()
    names = ['A', 'B', 'C', 'D']
    results = finish([spawn_chat(engine, prefix, 'strict', name, 25, 'error') for name in names])
    assert sum(r['conflicts'] for r in results) >= 1
    store = make_store(engine, table_prefix=prefix)
    data = await store.get('strict')
    assert data is not None
    messages = data['threads']['main']
    check_turns(messages, names, 25)
    for index in range(1, len(messages), 2):
        # The reply at `index` answered a request holding everything stored before it.
        assert text(messages[index]).endswith(f' saw {index}'), (index, text(messages[index]))


async def test_two_processes_on_two_threads_keep_both(engine):
    prefix = table_prefix()
    finish(
        [
            spawn_chat(engine, prefix, 'two', 'A', 50, 'append', 'a'),
            spawn_chat(engine, prefix, 'two', 'B', 50, 'append', 'b'),
        ]
    )
    data = await make_store(engine, table_prefix=prefix).get('two')
    assert data is not None
    check_turns(data['threads']['a'], ['A'], 50)
    check_turns(data['threads']['b'], ['B'], 50)


STATE_WORKER = """
engine, location, w, table_prefix = sys.argv[1:5]
extra = {} if engine == 'redis' else {'table_prefix': table_prefix}
location = f'{location}:{table_prefix}' if engine == 'redis' else location

async def main():
    ai = make_ai()
    session = await ai.load_session('state', store=make_store(engine, location, **extra))
    for i in range(50):
        await session.update_state({f'k{w}': i})
    print(json.dumps(session.state))

asyncio.run(main())
"""


async def test_state_updates_from_four_processes_all_land(engine):
    prefix = table_prefix()
    kind, location = engine
    finish([spawn(STATE_WORKER, kind, location, str(w), prefix) for w in range(4)])
    data = await make_store(engine, table_prefix=prefix).get('state')
    assert data is not None
    assert data['state'] == {'k0': 49, 'k1': 49, 'k2': 49, 'k3': 49}


async def test_after_a_save_a_worker_sees_the_other_workers_turns(engine):
    prefix = table_prefix()
    ai = make_ai()
    store_a, store_b = make_store(engine, table_prefix=prefix), make_store(engine, table_prefix=prefix)
    a = await ai.load_session('seen', store=store_a)
    b = await ai.load_session('seen', store=store_b)
    await a.chat().send('from a')
    response = await b.chat().send('from b')
    # b's request was generated from its stale copy, but its session now holds both turns.
    assert response.text == 're from b saw 1'
    assert [text(m.model_dump(exclude_none=True)) for m in b.threads['main']] == [
        'from a',
        're from a saw 1',
        'from b',
        're from b saw 1',
    ]
    assert b.version == 2


async def test_chats_with_an_unchanged_preamble_append_and_never_conflict(engine):
    # A web app's pattern: each request opens the chat by id with the same system= preamble.
    store = make_store(engine, table_prefix=table_prefix())
    ai = make_ai()
    await ai.chat(store=store, session_id='web', system='be brief').send('first')
    held = await ai.load_session('web', store=store)
    await ai.chat(store=store, session_id='web', system='be brief').send('other')
    # `held` is stale now. Its equal preamble is kept as stored, so its turn appends
    # (a rewrite of the thread would be refused: another worker saved meanwhile).
    await held.chat(system='be brief').send('mine')
    stored = await store.get('web')
    assert stored is not None
    assert [text(m) for m in stored['threads']['main'] if m['role'] == 'user'] == ['first', 'other', 'mine']
    assert [m['role'] for m in stored['threads']['main']].count('system') == 1


async def test_a_repeated_turn_id_is_stored_once(engine):
    store = make_store(engine, table_prefix=table_prefix())
    message = '{"role":"user","content":[{"text":"x"}]}'
    first = await store._commit(
        'idem', turn_id='t-1', expected_version=0, threads=[('main', 0, False, [message])]
    )
    again = await store._commit(
        'idem', turn_id='t-1', expected_version=0, threads=[('main', 0, False, [message])]
    )
    assert (first.version, first.duplicate) == (1, False)
    assert (again.version, again.duplicate) == (1, True)
    data = await store.get('idem')
    assert data is not None and len(data['threads']['main']) == 1


async def test_a_loaded_session_reads_every_message_as_json_loads_does(engine):
    import json

    store = make_store(engine, table_prefix=table_prefix())
    texts = [
        '{"role":"user","content":[{"text":"caf\u00e9 \\ud83d\\ude00 \\ud800 \\"q\\""}]}',
        '{"role":"model","content":[{"data":{"n":-1.5e3,"big":123456789012345678901234567890,'
        '"ok":true,"none":null,"list":[[],{}]}}],"metadata":{"dup":1,"dup":2}}',
        '{ "role" : "user" , "content" : [ ] }',
        # What the core's reader cannot take as it is (ints beyond 64 bits, -0, out of
        # float range): read as json.loads reads them, types included.
        '{"role":"user","content":[],"m":{"z":-0,"zf":-0.0,"i":-9223372036854775809,'
        '"u":18446744073709551615,"inf":1e400,"f":0.1,"e":1E-7,"neg":-12}}',
        '{"role":"model","content":[{"text":"\\u00e9 \\n \\t \\/"}],"d":{"a":{"b":[1,[2,[3]]]}}}',
    ]
    await store._commit('rt', turn_id='t-1', expected_version=0, threads=[('main', 0, False, texts)])
    await store._commit('rt', turn_id='t-2', expected_version=1, threads=[('side', 0, False, texts[:1])])
    data = await store.get('rt')
    expected = {
        'id': 'rt',
        'threads': {'main': [json.loads(t) for t in texts], 'side': [json.loads(texts[0])]},
    }
    # repr tells 0 from -0.0 and 1 from 1.0 (== does not), and shows key order.
    assert repr(data) == repr(expected)
    assert data is not None and list(data['threads']) == ['main', 'side']


async def test_a_message_written_by_something_else_is_data_loss_naming_the_session(engine):
    prefix = table_prefix()
    store = make_store(engine, table_prefix=prefix)
    message = '{"role":"user","content":[{"text":"x"}]}'
    await store._commit(
        'foreign', turn_id='t-1', expected_version=0, threads=[('main', 0, False, [message] * 2)]
    )
    kind, location = engine
    if kind == 'redis':
        keys = redis_cli('--scan', '--pattern', f'{location}:{prefix}:s:{{foreign}}:t:*').split()
        assert len(keys) == 1
        redis_cli('LSET', keys[0], '1', '[1]')
    else:
        psql(
            f"UPDATE {prefix}session_messages SET message = '[1]' WHERE seq = 1",
            dbname=location.rsplit('/', 1)[1],
        )
    with pytest.raises(GenkitError) as corrupt:
        await store.get('foreign')
    assert corrupt.value.status == 'DATA_LOSS'
    assert 'foreign' in str(corrupt.value) and 'message 1' in str(corrupt.value)


async def test_a_postgres_thread_with_a_missing_message_is_data_loss(database):
    prefix = table_prefix()
    store = PostgresSessionStore(database, table_prefix=prefix)
    message = '{"role":"user","content":[{"text":"x"}]}'
    await store._commit('gap', turn_id='t-1', expected_version=0, threads=[('main', 0, False, [message] * 3)])
    psql(f'DELETE FROM {prefix}session_messages WHERE seq = 1', dbname=database.rsplit('/', 1)[1])
    with pytest.raises(GenkitError) as corrupt:
        await store.get('gap')
    assert corrupt.value.status == 'DATA_LOSS'
    assert 'gap' in str(corrupt.value) and 'main' in str(corrupt.value)


async def test_sessions_expire_after_ttl_and_saves_refresh_it(engine):
    import asyncio

    store = make_store(engine, table_prefix=table_prefix(), ttl=1.0)
    ai = make_ai()
    session = await ai.load_session('ttl', store=store)
    await session.chat().send('one')
    await asyncio.sleep(0.6)
    await session.chat().send('two')  # refreshes the TTL
    await asyncio.sleep(0.6)
    assert await store.get('ttl') is not None
    await asyncio.sleep(1.0)
    assert await store.get('ttl') is None
    with pytest.raises(SessionLostError) as lost:
        await session.chat().send('three')
    assert lost.value.status == 'DATA_LOSS'
    assert "'ttl'" in str(lost.value) or '"ttl"' in str(lost.value)


async def test_strict_conflict_is_aborted_and_retryable(engine):
    store = make_store(engine, table_prefix=table_prefix(), on_conflict='error')
    ai = make_ai()
    a = await ai.load_session('race', store=store)
    b = await ai.load_session('race', store=store)
    await a.chat().send('first')
    with pytest.raises(SessionConflictError) as conflict:
        await b.chat().send('second')
    assert isinstance(conflict.value, GenkitError)
    assert conflict.value.status == 'ABORTED'
    assert b.threads == {}  # a refused turn changes nothing
    b = await ai.load_session('race', store=store)
    await b.chat().send('second')
    data = await store.get('race')
    assert data is not None and [text(m) for m in data['threads']['main']][::2] == ['first', 'second']


async def test_update_messages_appends_only_the_tail(engine):
    store = make_store(engine, table_prefix=table_prefix())
    ai = make_ai()
    session = await ai.load_session('tail', store=store)
    other = await ai.load_session('tail', store=store)
    base = [{'role': 'user', 'content': [{'text': 'a'}]}]
    await session.update_messages('main', base)
    # Another worker's write lands between; an extension of what `session` holds appends after it.
    await other.update_messages('main', [{'role': 'user', 'content': [{'text': 'other'}]}])
    await session.update_messages('main', [*base, {'role': 'user', 'content': [{'text': 'b'}]}])
    data = await store.get('tail')
    assert data is not None and [text(m) for m in data['threads']['main']] == ['a', 'other', 'b']
    # A list that does not extend the held thread is a replace, and conflicts like one.
    with pytest.raises(SessionConflictError):
        await other.update_messages('main', [{'role': 'system', 'content': [{'text': 'new preamble'}]}])


async def test_worker_killed_between_generate_and_save_leaves_that_turn_out(engine):
    prefix = table_prefix()
    kind, location = engine
    killed = spawn(
        """
engine, location, table_prefix = sys.argv[1:4]
extra = {} if engine == 'redis' else {'table_prefix': table_prefix}
location = f'{location}:{table_prefix}' if engine == 'redis' else location
import os, time
async def main():
    ai = Genkit(model='programmableModel')
    def respond(request, send_chunk):
        if request.messages[-1].content[0].text == 'K-3':
            print('generating', flush=True)
            time.sleep(60)  # killed here: after generate started, before the save
        return 'ok'
    define_programmable_model(ai, respond=respond)
    session = await ai.load_session('kill', store=make_store(engine, location, **extra))
    for i in range(10):
        await session.chat().send(f'K-{i}')
        print('acked', i, flush=True)
asyncio.run(main())
""",
        kind,
        location,
        prefix,
    )
    assert killed.stdout is not None
    with killed:
        while (line := killed.stdout.readline()) != 'generating\n':
            assert line, killed.stderr.read() if killed.stderr else 'worker died'
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
    store = make_store(engine, table_prefix=prefix)
    session = await make_ai().load_session('kill', store=store)
    assert [text(m.model_dump()) for m in session.threads['main']][::2] == ['K-0', 'K-1', 'K-2']
    assert session.version == 3
    await session.chat().send('after')
    assert session.version == 4


def test_fork_children_use_a_store_created_before_fork(engine):
    import asyncio
    import multiprocessing

    prefix = table_prefix()
    store = make_store(engine, table_prefix=prefix)
    asyncio.run(make_ai().load_session('fork', store=store))  # the parent connects first

    context = multiprocessing.get_context('fork')
    children = [context.Process(target=_fork_child, args=(store, w)) for w in range(4)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    data = asyncio.run(store.get('fork'))
    assert data is not None
    assert sorted(text(m) for m in data['threads']['main'][::2]) == [f'child-{w}' for w in range(4)]


def _fork_child(store: SharedSessionStore, w: int) -> None:
    import asyncio

    async def turn() -> None:
        session = await make_ai().load_session('fork', store=store)
        await session.chat().send(f'child-{w}')

    asyncio.run(asyncio.wait_for(turn(), 30))


async def test_hostile_session_ids_are_rejected_or_kept_apart(engine):
    store = make_store(engine, table_prefix=table_prefix())
    for bad in ['', '   ', 'a/b', 'nul\x00', '..']:
        with pytest.raises(ValueError):
            await store.get(bad)
    ai = make_ai()
    for sid in ['a', 'a}:t:0', "x'; DROP TABLE genkit_sessions;--", '{a}']:
        session = await ai.load_session(sid, store=store)
        await session.chat().send(sid)
    for sid in ['a', 'a}:t:0', "x'; DROP TABLE genkit_sessions;--", '{a}']:
        data = await store.get(sid)
        assert data is not None and [text(m) for m in data['threads']['main']][::2] == [sid]


async def test_unreachable_server_is_unavailable_naming_host_and_port(engine):
    kind, _ = engine
    if kind == 'redis':
        store: SharedSessionStore = RedisSessionStore('redis://:hunter2@127.0.0.1:1/0', timeout=0.3)
    else:
        store = PostgresSessionStore('postgresql://postgres:hunter2@127.0.0.1:1/db', timeout=0.3)
    with pytest.raises(SessionStoreError) as failed:
        await store.get('s')
    assert failed.value.status == 'UNAVAILABLE'
    assert '127.0.0.1:1' in str(failed.value)
    assert 'hunter2' not in str(failed.value)


def test_bad_options_are_rejected_by_name():
    with pytest.raises(ValueError, match='on_conflict'):
        RedisSessionStore(REDIS_URL, on_conflict='merge')
    with pytest.raises(ValueError, match='prefix'):
        RedisSessionStore(REDIS_URL, prefix='a{b}')
    with pytest.raises(ValueError, match='table_prefix'):
        PostgresSessionStore('postgresql://postgres@127.0.0.1/postgres', table_prefix='x; DROP')
    with pytest.raises(ValueError, match='ttl'):
        RedisSessionStore(REDIS_URL, ttl=-1)
    with pytest.raises(ValueError, match='ttl must be a positive number of seconds below 1e9'):
        PostgresSessionStore('postgresql://postgres@127.0.0.1/postgres', ttl=1e9)
    with pytest.raises(ValueError, match='timeout must be between 0 and 3600 seconds, got 3601'):
        RedisSessionStore(REDIS_URL, timeout=3601)
    with pytest.raises(ValueError, match='invalid PostgreSQL DSN'):
        PostgresSessionStore('postgresql://u:hunter2@h:notaport/db')
    with pytest.raises(TypeError, match='pool_size'):
        PostgresSessionStore('postgresql://postgres@127.0.0.1/postgres', pool_size='8')  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='pool_size'):
        PostgresSessionStore('postgresql://postgres@127.0.0.1/postgres', pool_size=2**70)
    with pytest.raises(ValueError, match=r'TLS \(rediss://\) is not built in'):
        RedisSessionStore('rediss://127.0.0.1:6380/0')
    # However the password is written, a DSN or URL that cannot be parsed never shows it.
    for make, bad in [
        (PostgresSessionStore, 'host=127.0.0.1 password = hunter2 port=x'),
        (PostgresSessionStore, "host=127.0.0.1 password='hunter2 x' port=x"),
        (PostgresSessionStore, 'postgresql://h:notaport/db?password=hunter2'),
        (RedisSessionStore, 'hunter2'),  # a password pasted where the URL goes
    ]:
        with pytest.raises(ValueError) as refused:
            make(bad)
        assert 'hunter2' not in str(refused.value), refused.value


def redis_cli(*args: str) -> str:
    return subprocess.run(
        ['redis-cli', '-h', '127.0.0.1', *args], check=True, capture_output=True, text=True
    ).stdout


async def test_a_negative_stored_version_is_data_loss_not_a_huge_version(engine):
    prefix = table_prefix()
    store = make_store(engine, table_prefix=prefix)
    message = '{"role":"user","content":[{"text":"x"}]}'
    await store._commit('neg', turn_id='t-1', expected_version=0, threads=[('main', 0, False, [message])])
    kind, location = engine
    if kind == 'redis':
        redis_cli('HSET', f'{location}:{prefix}:s:{{neg}}', 'v', '-1')
    else:
        psql(
            f"UPDATE {prefix}sessions SET version = -1 WHERE session_id = 'neg'",
            dbname=location.rsplit('/', 1)[1],
        )
    with pytest.raises(GenkitError) as corrupt:
        await store._load_versioned('neg')
    assert corrupt.value.status == 'DATA_LOSS' and 'negative' in str(corrupt.value)
    # A save is refused before it writes anything (in both conflict modes' paths).
    for expected in (1, 0):
        with pytest.raises(CorruptSessionError):
            await store._commit(
                'neg',
                turn_id=f't-{expected + 2}',
                expected_version=expected,
                threads=[('main', 1, False, [message])],
            )
    if kind == 'redis':
        assert redis_cli('HGET', f'{location}:{prefix}:s:{{neg}}', 'v').strip() == '-1'
    else:
        db = location.rsplit('/', 1)[1]
        assert (
            psql(f"SELECT version FROM {prefix}sessions WHERE session_id = 'neg'", dbname=db).strip() == '-1'
        )
        assert (
            psql(f"SELECT count(*) FROM {prefix}session_messages WHERE session_id = 'neg'", dbname=db).strip()
            == '1'
        )


async def test_keys_a_lost_redis_session_left_behind_do_not_come_back(redis_location):
    store = RedisSessionStore(REDIS_URL, prefix=redis_location)
    ai = make_ai()
    chat = ai.chat(store=store, session_id='orphan')
    await chat.send('one')
    chat2 = ai.chat(store=store, session_id='orphan2')
    await chat2.send('kept')
    # Eviction took the session's hash alone: the session reads as unknown, and a new one
    # under the id starts over, not on top of the old thread.
    redis_cli('DEL', f'{redis_location}:s:{{orphan}}')
    assert await store.get('orphan') is None
    fresh = ai.chat(store=store, session_id='orphan')
    await fresh.send('fresh')
    stored = await store.get('orphan')
    assert stored is not None
    assert [text(m) for m in stored['threads']['main']] == ['fresh', 're fresh saw 1']
    # The thread index alone lost: its messages are not read as a session without threads,
    # nor appended to or deleted by a save (DATA_LOSS); a whole save replaces them.
    redis_cli('DEL', f'{redis_location}:s:{{orphan2}}:threads')
    with pytest.raises(CorruptSessionError) as lost_index:
        await store.get('orphan2')
    assert lost_index.value.status == 'DATA_LOSS' and 'thread index' in str(lost_index.value)
    with pytest.raises(CorruptSessionError):
        await store._commit(
            'orphan2', turn_id='t-x', expected_version=1, threads=[('main', 0, False, ['{}'])]
        )
    assert redis_cli('LLEN', f'{redis_location}:s:{{orphan2}}:t:0').strip() == '2'
    await store.save('orphan2', {'threads': {'main': [{'role': 'user', 'content': [{'text': 'whole'}]}]}})
    stored = await store.get('orphan2')
    assert stored is not None
    assert [text(m) for m in stored['threads']['main']] == ['whole']


async def test_a_redis_session_without_its_state_kind_is_data_loss(redis_location):
    store = RedisSessionStore(REDIS_URL, prefix=redis_location)
    session = make_ai().create_session(store=store, session_id='kindless')
    await session.update_state({'plan': 'pro'})
    redis_cli('HDEL', f'{redis_location}:s:{{kindless}}', 'sk')
    # Read as "no state", the stored keys would vanish; merged onto, they would be dropped.
    with pytest.raises(CorruptSessionError, match=r'state kind field \(sk\) is missing') as lost:
        await store.get('kindless')
    assert lost.value.status == 'DATA_LOSS' and lost.value.session_id == 'kindless'
    with pytest.raises(CorruptSessionError, match=r'\(sk\) is missing'):
        await session.update_state({'seats': 3})
    assert redis_cli('HGET', f'{redis_location}:s:{{kindless}}:state', 'plan').strip() == '"pro"'
    # A whole save rewrites the state, kind included.
    await store.save('kindless', {'state': {'fresh': 1}, 'threads': {}})
    assert await store.get('kindless') == {'id': 'kindless', 'state': {'fresh': 1}, 'threads': {}}


async def test_a_postgres_state_holding_a_nul_is_refused_on_every_write(database):
    store = PostgresSessionStore(database, table_prefix=table_prefix())
    ai = make_ai()
    session = ai.create_session(store=store, session_id='nul', initial_state={'ok': 1})
    await session.update_state({'ok': 1})
    for patch in ({'k': 'x\x00y'}, {'k\x00': 1}, {'k': ['\x00']}):
        with pytest.raises(ValueError, match='NUL character'):
            await session.update_state(patch)
    with pytest.raises(ValueError, match='NUL character'):
        await ai.create_session(store=store, session_id='nul2', initial_state={'k': 'a\x00'}).update_state({})
    await session.update_state({'k': 'a backslash \\u0000 is no NUL'})
    loaded = await ai.load_session('nul', store=store)
    assert loaded is not None and loaded.state == {'ok': 1, 'k': 'a backslash \\u0000 is no NUL'}


async def test_expired_postgres_sessions_are_swept(database):
    prefix = table_prefix()
    store = make_store(('postgres', database), table_prefix=prefix, ttl=0.5)
    message = '{"role":"user","content":[{"text":"x"}]}'
    for sid in ('old-1', 'old-2', 'old-3'):
        await store._commit(sid, turn_id=sid, expected_version=0, threads=[('main', 0, False, [message])])
    name = database.rsplit('/', 1)[1]

    def rows(table: str) -> int:
        return int(psql(f'SELECT count(*) FROM {prefix}{table}', dbname=name).strip())

    assert (rows('sessions'), rows('session_messages')) == (3, 3)
    await asyncio.sleep(1.2)
    assert await store.get('old-1') is None  # hidden at once...
    # ... and deleted by the next write once a sweep is due (at most every max(ttl, 1 s)).
    await store._commit('new', turn_id='n', expected_version=0, threads=[('main', 0, False, [message])])
    assert (rows('sessions'), rows('session_messages'), rows('session_turns')) == (1, 1, 1)
    # Or on demand.
    await asyncio.sleep(0.7)
    assert await store.sweep_expired() == 1
    assert rows('sessions') == 0


async def test_redis_keeps_a_bounded_window_of_turn_ids(redis_location):
    store = make_store(('redis', redis_location), table_prefix='window')
    message = '{"role":"user","content":[{"text":"x"}]}'
    turns = f'{redis_location}:window:s:{{w}}:turns'

    def held() -> int:
        return int(redis_cli('HLEN', turns))

    version = 0

    async def turn(i: int) -> None:
        nonlocal version
        done = await store._commit(
            'w', turn_id=f't{i}', expected_version=version, threads=[('main', i, False, [message])]
        )
        assert not done.duplicate
        version = done.version

    # Trimmed in batches: up to 1100 turn ids are held, then the oldest go down to 1000.
    for i in range(1100):
        await turn(i)
    assert held() == 1100
    await turn(1100)
    assert held() == 1000
    # The latest 1000 turns are still deduplicated...
    for turn_id in ('t1100', 't101'):
        again = await store._commit(
            'w', turn_id=turn_id, expected_version=version, threads=[('main', 1101, False, [message])]
        )
        assert again.duplicate and again.version == version
    # ... the older ones have left the window (a retry comes seconds after its turn, not 1000 turns later).
    old = await store._commit(
        'w', turn_id='t100', expected_version=version, threads=[('main', 1101, False, [message])]
    )
    assert not old.duplicate and old.version == version + 1


async def test_a_postgres_thread_read_out_of_seq_order_loads_in_seq_order(database):
    # Rewriting the first message moves its row to the end of the table: the scan returns it
    # last, after two batches of the others (the loop builds messages as they arrive).
    prefix = table_prefix()
    store = PostgresSessionStore(database, table_prefix=prefix)
    messages = [f'{{"role":"user","content":[{{"text":"m{i}"}}]}}' for i in range(6000)]
    await store._commit('moved', turn_id='t-1', expected_version=0, threads=[('main', 0, False, messages)])
    await store._commit(
        'moved', turn_id='t-2', expected_version=1, threads=[('side', 0, False, messages[:3])]
    )
    psql(
        f"UPDATE {prefix}session_messages SET message = message WHERE seq = 0 AND session_id = 'moved'",
        dbname=database.rsplit('/', 1)[1],
    )
    data = await store.get('moved')
    assert data is not None
    assert [m['content'][0]['text'] for m in data['threads']['main']] == [f'm{i}' for i in range(6000)]
    assert [m['content'][0]['text'] for m in data['threads']['side']] == ['m0', 'm1', 'm2']
    assert list(data['threads']) == ['main', 'side']


async def test_a_long_postgres_thread_names_its_first_bad_message(database):
    prefix = table_prefix()
    store = PostgresSessionStore(database, table_prefix=prefix)
    message = '{"role":"user","content":[{"text":"x"}]}'
    await store._commit(
        'bad', turn_id='t-1', expected_version=0, threads=[('main', 0, False, [message] * 6000)]
    )
    for seq in (5500, 10):
        psql(
            f"UPDATE {prefix}session_messages SET message = '[1]' WHERE seq = {seq}",
            dbname=database.rsplit('/', 1)[1],
        )
    with pytest.raises(GenkitError) as corrupt:
        await store.get('bad')
    assert corrupt.value.status == 'DATA_LOSS'
    assert 'message 10' in str(corrupt.value) and 'message 5500' not in str(corrupt.value)
