"""pgvector-specific behaviour on the real PostgreSQL 15 + pgvector of this machine.

The module runs in a fresh database of its own (dropped at the end). The restart test
starts a private PostgreSQL instance; the shared server is never restarted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random

import pytest
from genkit import Document, GenkitError

from genkit_parity import Genkit, VectorStoreError
from genkit_parity.postgres import (
    Column,
    DistanceStrategy,
    ExactNearestNeighbor,
    HNSWIndex,
    IVFFlatIndex,
    PostgresEngine,
    define_postgres_vector_store,
    postgres_indexer_ref,
    postgres_retriever_ref,
)
from genkit_parity.testing import define_toy_embedder

from ._loopback import free_port
from ._pg import PrivatePostgres, dsn, fresh_database, psql


@pytest.fixture(scope='module')
def database():
    with fresh_database() as name:
        yield name


def toy_ai() -> Genkit:
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    return ai


async def test_table_ddl_is_jss_with_an_id_default(database):
    engine = PostgresEngine.from_url(dsn(database))
    await engine.init_vectorstore_table(
        'ddl', 3, metadata_columns=[Column('year', 'INTEGER', nullable=False)]
    )
    columns = psql(
        "SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') "
        "FROM information_schema.columns WHERE table_name = 'ddl' ORDER BY ordinal_position",
        db=database,
    ).splitlines()
    assert columns == [
        'id uuid NO gen_random_uuid()',
        'content text NO ',
        'embedding USER-DEFINED NO ',
        'year integer NO ',
        'json_metadata json YES',
    ]
    with pytest.raises(VectorStoreError) as caught:
        await engine.init_vectorstore_table('ddl', 3)
    assert caught.value.status == 'ALREADY_EXISTS'
    await engine.init_vectorstore_table('ddl', 5, overwrite_existing=True)
    assert (
        psql(
            'SELECT format_type(atttypid, atttypmod) FROM pg_attribute '
            "WHERE attrelid = 'ddl'::regclass AND attname = 'embedding'",
            db=database,
        )
        == 'vector(5)'
    )
    with pytest.raises(ValueError, match='invalid column type'):
        await engine.init_vectorstore_table(
            'evil', 3, metadata_columns=[Column('x', 'int); DROP TABLE ddl; --')]
        )


async def test_refs_and_registered_actions(database):
    ai = toy_ai()
    engine = PostgresEngine.from_url(dsn(database))
    await engine.init_vectorstore_table('refs', 3)
    define_postgres_vector_store(ai, table='refs', embedder='toy', engine=engine)
    assert postgres_retriever_ref('refs').name == 'postgres/refs'
    assert postgres_retriever_ref('refs').info == {'label': 'refs'}
    assert postgres_indexer_ref('refs').name == 'postgres/refs'
    await ai.index(indexer=postgres_indexer_ref('refs'), documents=[Document.from_text('aaa')])
    found = await ai.retrieve(retriever=postgres_retriever_ref('refs'), query='a')
    assert [doc.model_dump(exclude_none=True) for doc in found] == [{'content': [{'text': 'aaa'}]}]
    action = await ai.registry.resolve_action('retriever', 'postgres/refs')
    options = action.metadata['retriever']['customOptions']['properties']
    assert {'k', 'filter', 'unsafe_sql_filter', 'ef_search', 'probes'} <= set(options)


async def test_string_filter_is_refused_unless_explicitly_unsafe(database):
    ai = toy_ai()
    engine = PostgresEngine.from_url(dsn(database))
    await engine.init_vectorstore_table('strf', 3, metadata_columns=[Column('year', 'INTEGER')])
    define_postgres_vector_store(ai, table='strf', embedder='toy', engine=engine, metadata_columns=['year'])
    docs = [Document.from_text('aaa', {'year': 2020}), Document.from_text('aab', {'year': 2024})]
    await ai.index(indexer='postgres/strf', documents=docs)
    with pytest.raises(GenkitError) as caught:
        await ai.retrieve(retriever='postgres/strf', query='a', options={'filter': 'year > 2021'})
    assert caught.value.status == 'INVALID_ARGUMENT'
    assert 'unsafe_sql_filter' in str(caught.value)
    found = await ai.retrieve(
        retriever='postgres/strf', query='a', options={'unsafe_sql_filter': 'year > 2021'}
    )
    assert [doc.text for doc in found] == ['aab']
    # Values are parameters: an injection attempt is just a value that matches nothing.
    found = await ai.retrieve(
        retriever='postgres/strf',
        query='a',
        options={'filter': {'year': {'$in': [2020, 2024]}, 'k2': "x' OR 1=1 --"}},
    )
    assert found == []
    with pytest.raises(VectorStoreError) as caught:
        await ai.retrieve(
            retriever='postgres/strf', query='a', options={'filter': {'year': {'$regex': '.*'}}}
        )
    assert caught.value.status == 'INVALID_ARGUMENT'


async def test_explicit_ids_upsert_and_distance_strategies(database):
    engine = PostgresEngine.from_url(dsn(database))
    for strategy in DistanceStrategy:
        table = f'dist_{strategy.name.lower()}'
        await engine.init_vectorstore_table(table, 3, id_column=Column('id', 'TEXT'))
        ai = toy_ai()
        define_postgres_vector_store(
            ai, table=table, embedder='toy', engine=engine, distance_strategy=strategy
        )
        await ai.index(
            indexer=f'postgres/{table}',
            documents=[Document.from_text('aaa', {'id': 'one'}), Document.from_text('abc', {'id': 'two'})],
        )
        # Same id, new content: replaced, not duplicated (JS raised a primary-key error).
        await ai.index(indexer=f'postgres/{table}', documents=[Document.from_text('aab', {'id': 'one'})])
        found = await ai.retrieve(
            retriever=f'postgres/{table}', query='a', options={'with_score': True, 'k': 10}
        )
        assert sorted(doc.text for doc in found) == ['aab', 'abc']
        scores = {doc.text: doc.metadata['score'] for doc in found}
        expected = {
            DistanceStrategy.COSINE_DISTANCE: {'aab': 1 - 2 / 5**0.5, 'abc': 1 - 1 / 3**0.5},
            DistanceStrategy.EUCLIDEAN: {'aab': (1 + 1) ** 0.5, 'abc': (0 + 1 + 1) ** 0.5},
            DistanceStrategy.INNER_PRODUCT: {'aab': 2.0, 'abc': 1.0},
        }[strategy]
        assert scores == pytest.approx(expected)


def _index_worker(db: str, worker: int, count: int) -> None:
    async def run() -> None:
        ai = toy_ai()
        engine = PostgresEngine.from_url(dsn(db))
        define_postgres_vector_store(ai, table='shared', embedder='toy', engine=engine)
        docs = [
            Document.from_text('a' * (1 + i % 7) + 'b' * (i % 5), {'worker': worker, 'n': i})
            for i in range(count)
        ]
        for start in range(0, count, 25):
            await ai.index(
                indexer='postgres/shared', documents=docs[start : start + 25], options={'batch_size': 10}
            )

    asyncio.run(run())


async def test_four_processes_indexing_one_table_lose_nothing(database):
    engine = PostgresEngine.from_url(dsn(database))
    await engine.init_vectorstore_table('shared', 3)
    context = multiprocessing.get_context('spawn')
    workers = [context.Process(target=_index_worker, args=(database, w, 150)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    assert psql('SELECT count(*) FROM shared', db=database) == '600'
    assert (
        psql(
            "SELECT count(DISTINCT (json_metadata->>'worker', json_metadata->>'n')) FROM shared", db=database
        )
        == '600'
    )


def _embedding_like(n: int, dims: int, rank: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    basis = [[rng.gauss(0, 1) for _ in range(dims)] for _ in range(rank)]
    vectors = []
    for _ in range(n):
        weights = [rng.gauss(0, 1) for _ in range(rank)]
        vectors.append(
            [
                sum(w * b[d] for w, b in zip(weights, basis, strict=True)) + rng.gauss(0, 0.3)
                for d in range(dims)
            ]
        )
    return vectors


async def test_hnsw_and_ivfflat_keep_recall_and_query_settings_apply_in_the_transaction(database):
    dims, n = 32, 20000
    engine = PostgresEngine.from_url(dsn(database))
    await engine.init_vectorstore_table('recall', dims)
    ai = toy_ai()
    store = define_postgres_vector_store(ai, table='recall', embedder='toy', engine=engine)
    vectors = _embedding_like(n + 50, dims, rank=8, seed=7)
    docs = [Document.from_text(f'doc {i}') for i in range(n)]
    for start in range(0, n, 2000):
        await store.upsert_embedded(docs[start : start + 2000], vectors[start : start + 2000])
    assert await store.count() == n
    queries = vectors[n:]
    exact = [[d.text for d in await store.search(q, {'k': 10})] for q in queries]

    def recall(results: list[list[str]]) -> float:
        return sum(len(set(r) & set(e)) for r, e in zip(results, exact, strict=False)) / (10 * len(exact))

    await store.apply_vector_index(HNSWIndex(m=16, ef_construction=64))
    approximate = [[d.text for d in await store.search(q, {'k': 10})] for q in queries]
    assert recall(approximate) >= 0.95
    # hnsw.ef_search bounds how many rows HNSW returns: proof it is applied to the query.
    limited = await store.search(queries[0], {'k': 10, 'ef_search': 3})
    assert len(limited) == 3

    await store.apply_vector_index(IVFFlatIndex(lists=50))
    probed = [[d.text for d in await store.search(q, {'k': 10, 'probes': 10})] for q in queries]
    assert recall(probed) >= 0.95
    await store.apply_vector_index(ExactNearestNeighbor())
    assert (
        psql(
            'SELECT count(*) FROM pg_indexes '
            "WHERE tablename = 'recall' AND indexname LIKE '%genkitvectorindex'",
            db=database,
        )
        == '0'
    )


async def test_pool_survives_a_restart_of_a_private_server():
    port = free_port()
    server = PrivatePostgres(port).start()
    try:
        with fresh_database(port=port) as db:
            engine = PostgresEngine.from_url(dsn(db, port=port), retry_seconds=15)
            await engine.init_vectorstore_table('restart', 3)
            ai = toy_ai()
            define_postgres_vector_store(ai, table='restart', embedder='toy', engine=engine)
            await ai.index(indexer='postgres/restart', documents=[Document.from_text('aaa')])
            restarting = asyncio.create_task(asyncio.to_thread(server.restart))
            written = ['aaa']
            for i in range(20):
                text = 'b' * (i + 1)
                await ai.index(indexer='postgres/restart', documents=[Document.from_text(text)])
                written.append(text)
                await asyncio.sleep(0.05)
            await restarting
            await ai.index(indexer='postgres/restart', documents=[Document.from_text('ccc')])
            written.append('ccc')
            found = await ai.retrieve(retriever='postgres/restart', query='a', options={'k': 100})
            assert sorted(doc.text for doc in found) == sorted(written)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ('table', 'id_column', 'store_metadata'),
    [('bulk_uuid', 'id', True), ('bulk_text', Column('id', 'TEXT'), True), ('bulk_nojson', 'id', False)],
)
async def test_new_rows_and_rows_that_exist_in_one_batch_are_both_written(
    database, table, id_column, store_metadata
):
    # A batch of new rows goes in by binary COPY; a batch that meets an existing id is
    # written by the upsert statement instead. Either way the table ends up the same.
    engine = PostgresEngine.from_url(dsn(database))
    await engine.init_vectorstore_table(table, 3, id_column=id_column, store_metadata=store_metadata)
    store = define_postgres_vector_store(
        toy_ai(),
        table=table,
        embedder='toy',
        engine=engine,
        metadata_json_column='json_metadata' if store_metadata else None,
    )
    ids = ['00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b']
    ids.append('00000000-0000-0000-0000-00000000000c')
    docs = [Document.from_text(f'v1 {i}', {'id': i, 'n': n}) for n, i in enumerate(ids)]
    await store.upsert_embedded(docs[:2], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    await store.upsert_embedded(
        [Document.from_text('v2 b', {'id': ids[1], 'n': 10}), docs[2]], [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    )
    for round_trip in range(3):  # the batches after a conflict, and new rows again
        await store.upsert_embedded(
            [
                Document.from_text(
                    f'r{round_trip}', {'id': f'0000000{round_trip}-0000-0000-0000-000000000000'}
                )
            ],
            [[1.0, 2.0, 3.0]],
        )
    assert await store.count() == 6
    rows = psql(
        f"SELECT id::text, content FROM {table} WHERE id::text LIKE '%00000000000_' AND content LIKE 'v%' "
        'ORDER BY id',
        db=database,
    ).splitlines()
    assert rows == [f'{ids[0]}|v1 {ids[0]}', f'{ids[1]}|v2 b', f'{ids[2]}|v1 {ids[2]}']
    (found,) = await store.search([0.0, 0.0, 1.0], {'k': 1})
    assert found.text == 'v2 b'
    assert found.metadata == ({'id': ids[1], 'n': 10} if store_metadata else None)


async def test_rows_written_by_something_else_are_typed_errors_or_no_neighbours(database):
    ai = toy_ai()
    engine = PostgresEngine.from_url(dsn(database))
    psql(
        'CREATE TABLE foreign_rows (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), content text, '
        'embedding vector(3), json_metadata text)',
        db=database,
    )
    define_postgres_vector_store(ai, table='foreign_rows', embedder='toy', engine=engine)
    await ai.index(indexer='postgres/foreign_rows', documents=[Document.from_text('aab')])
    # A row with no embedding has no distance: it is nobody's neighbour (as under an index scan).
    psql("INSERT INTO foreign_rows (content) VALUES ('no vector')", db=database)
    found = await ai.retrieve(retriever='postgres/foreign_rows', query='a', options={'k': 10})
    assert [doc.text for doc in found] == ['aab']
    # NULL content and metadata that is not JSON: DATA_LOSS naming the row, not a panic.
    psql(
        'INSERT INTO foreign_rows (id, content, embedding) VALUES '
        "('00000000-0000-0000-0000-000000000001', NULL, '[1,0,0]')",
        db=database,
    )

    async def retrieve_fails_with_data_loss(*naming: str) -> None:
        with pytest.raises(VectorStoreError) as caught:
            await ai.retrieve(retriever='postgres/foreign_rows', query='a', options={'k': 10})
        assert caught.value.status == 'DATA_LOSS'
        assert all(name in str(caught.value) for name in naming), caught.value

    await retrieve_fails_with_data_loss('00000000-0000-0000-0000-000000000001', 'content')
    psql(
        "UPDATE foreign_rows SET content = 'x', json_metadata = '{broken' "
        "WHERE id = '00000000-0000-0000-0000-000000000001'",
        db=database,
    )
    await retrieve_fails_with_data_loss('row 00000000-0000-0000-0000-000000000001', 'not JSON')


async def test_what_postgresql_cannot_keep_is_refused_before_anything_is_written(database):
    ai = toy_ai()
    engine = PostgresEngine.from_url(dsn(database))
    await engine.init_vectorstore_table('refused', 3)
    define_postgres_vector_store(ai, table='refused', embedder='toy', engine=engine)
    # Media would come back as an empty text; a NUL in metadata would break every JSON filter.
    for document, expected in (
        (Document.from_media('https://x/y.png', 'image/png'), 'parts other than text (media)'),
        (Document.from_text('aab', {'note': 'a\x00b'}), 'NUL'),
        (Document.from_text('aab', {'x': float('nan')}), 'NaN'),
        (Document.from_text('xyz'), 'all zeros'),  # no direction under the cosine distance
    ):
        with pytest.raises(GenkitError) as caught:
            await ai.index(indexer='postgres/refused', documents=[Document.from_text('abc'), document])
        assert caught.value.status == 'INVALID_ARGUMENT', caught.value
        assert expected in str(caught.value)
    assert psql('SELECT count(*) FROM refused', db=database) == '0'
    # Checked before the first batch is written: a bad document 150 stores none of 0-149.
    many = [Document.from_text(f'a{i}') for i in range(150)]
    with pytest.raises(GenkitError, match='parts other than text'):
        await ai.index(
            indexer='postgres/refused', documents=[*many, Document.from_media('https://x/y.png', 'image/png')]
        )
    assert psql('SELECT count(*) FROM refused', db=database) == '0'
    await ai.index(indexer='postgres/refused', documents=[Document.from_text('abc', {'note': 'a\\u0000b'})])
    found = await ai.retrieve(
        retriever='postgres/refused', query='a', options={'filter': {'note': 'a\\u0000b'}}
    )
    assert [doc.metadata for doc in found] == [{'note': 'a\\u0000b'}]  # a backslash is no NUL
    for options, expected in (({'filter': {'note': float('nan')}}, 'filter is not JSON'),):
        with pytest.raises(GenkitError, match=expected):
            await ai.retrieve(retriever='postgres/refused', query='a', options=options)
    with pytest.raises(VectorStoreError, match='all zeros'):
        await ai.retrieve(retriever='postgres/refused', query='xyz')


async def test_names_and_knobs_postgresql_would_cut_short_or_misread_are_refused(database):
    engine = PostgresEngine.from_url(dsn(database))
    with pytest.raises(ValueError, match='64 bytes long; PostgreSQL names hold at most 63'):
        await engine.init_vectorstore_table('t' * 64, 3)
    assert psql(f"SELECT count(*) FROM pg_class WHERE relname LIKE '{'t' * 63}%'", db=database) == '0'
    with pytest.raises(ValueError, match='63'):
        define_postgres_vector_store(Genkit(), table='u' * 64, embedder='toy', engine=engine)
    with pytest.raises(ValueError, match='vector_size'):
        await engine.init_vectorstore_table('wide', 16001)
    with pytest.raises(TypeError, match='vector_size'):
        await engine.init_vectorstore_table('wide', 3.0)  # type: ignore[arg-type]
    for pool_size in (-1, 0, 10**9, 2**70):  # 10**9 connections' worth of queue would abort
        with pytest.raises(ValueError, match='pool_size'):
            PostgresEngine.from_url(dsn(database), pool_size=pool_size)
    with pytest.raises(ValueError, match=r'HNSWIndex\.m'):
        HNSWIndex(m=-1)
    with pytest.raises(ValueError, match=r'IVFFlatIndex\.lists'):
        IVFFlatIndex(lists=0)
    ai = toy_ai()
    await engine.init_vectorstore_table('knobs', 3)
    store = define_postgres_vector_store(ai, table='knobs', embedder='toy', engine=engine)
    with pytest.raises(TypeError, match='HNSWIndex, IVFFlatIndex or ExactNearestNeighbor'):
        await store.apply_vector_index('hnsw')  # type: ignore[arg-type]
    # The default index name <table>genkitvectorindex would be cut short (and could name the
    # table itself): refused, and a name of one's own works.
    long_table = 'l' * 50
    await engine.init_vectorstore_table(long_table, 3)
    long_store = define_postgres_vector_store(ai, table=long_table, embedder='toy', engine=engine)
    with pytest.raises(VectorStoreError, match='pass a shorter name=') as caught:
        await long_store.apply_vector_index(HNSWIndex())
    assert caught.value.status == 'INVALID_ARGUMENT'
    await long_store.apply_vector_index(HNSWIndex(name='long_hnsw'))
    assert psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'long_hnsw'", db=database) == '1'
    for batch_size in (-5, 0, 'x'):
        with pytest.raises(GenkitError, match='batch_size must be a positive int'):
            await store.index([Document.from_text('a')], {'batch_size': batch_size})


async def test_a_schema_that_does_not_exist_is_not_found_naming_it(database):
    engine = PostgresEngine.from_url(dsn(database))
    with pytest.raises(VectorStoreError, match='schema "no_such_schema" does not exist') as created:
        await engine.init_vectorstore_table('elsewhere', 3, schema='no_such_schema')
    assert created.value.status == 'NOT_FOUND'
    ai = toy_ai()
    store = define_postgres_vector_store(
        ai, table='elsewhere', embedder='toy', engine=engine, schema='no_such_schema'
    )
    with pytest.raises(VectorStoreError) as retrieved:
        await ai.retrieve(retriever=store.name, query='a')
    assert retrieved.value.status == 'NOT_FOUND'
    with pytest.raises(VectorStoreError) as indexed:
        await ai.index(indexer=store.name, documents=[Document.from_text('a')])
    assert indexed.value.status == 'NOT_FOUND'
    with pytest.raises(VectorStoreError, match='every Column data_type a PostgreSQL type') as typo:
        await engine.init_vectorstore_table('typo', 3, metadata_columns=[Column('year', 'INTEGR')])
    assert typo.value.status == 'FAILED_PRECONDITION'
