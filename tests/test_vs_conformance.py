"""The conformance suite every vector store passes: pgvector, Chroma (embedded and over
HTTP) and Pinecone (loopback server speaking its wire format).

The toy embedder maps a text to its counts of a, b and c, so cosine similarities are exact:
for the query 'a', 'aaa' scores 1, 'aab' 2/sqrt(5), 'abc' 1/sqrt(3), 'bbb' and 'ccc' 0.
"""

from __future__ import annotations

import math
import os

import pytest
from genkit import Document, GenkitError

from genkit_parity import Genkit, VectorStoreError
from genkit_parity.testing import define_toy_embedder

from ._pg import fresh_database
from ._vs_harness import ChromaHarness, ChromaServer, PineconeHarness, PostgresHarness

os.environ.setdefault('ANONYMIZED_TELEMETRY', 'False')
chromadb = pytest.importorskip('chromadb')

DOCS = [
    ('aaa', {'src': 1}),
    ('bbb', None),
    ('abc', {'src': 3, 'tag': 'x'}),
    ('ccc', None),
    ('aab', {'src': 2, 'tag': 'y'}),
]


def documents() -> list[Document]:
    return [Document.from_text(text, metadata) for text, metadata in DOCS]


@pytest.fixture(scope='module')
def database():
    with fresh_database() as name:
        yield name


@pytest.fixture(scope='module')
def chroma_server():
    server = ChromaServer()
    started = server.start()
    yield server if started else None
    server.stop()


@pytest.fixture(params=['postgres', 'chroma', 'chroma-http', 'pinecone'])
async def store(request, database, chroma_server, tmp_path):
    kind = request.param
    if kind == 'postgres':
        harness = PostgresHarness(database)
    elif kind == 'chroma':
        client = chromadb.PersistentClient(
            path=str(tmp_path), settings=chromadb.Settings(anonymized_telemetry=False)
        )
        harness = ChromaHarness(client)
    elif kind == 'chroma-http':
        if chroma_server is None:
            pytest.skip('chroma run cannot start a server here')
        client = chromadb.HttpClient(
            host='127.0.0.1', port=chroma_server.port, settings=chromadb.Settings(anonymized_telemetry=False)
        )
        harness = ChromaHarness(client, http_port=chroma_server.port)
    else:
        harness = PineconeHarness()
    await harness.setup()
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    define_toy_embedder(ai, 'toy4', letters='abcd')
    name = harness.define(ai, 'toy')
    yield harness, ai, name
    harness.close()


async def test_top_k_order_and_scores(store):
    harness, ai, name = store
    await ai.index(indexer=name, documents=documents())
    found = await ai.retrieve(retriever=name, query='a', options={'k': 3, 'with_score': True})
    assert [doc.text for doc in found] == ['aaa', 'aab', 'abc']
    expected = [harness.score(1.0), harness.score(2 / math.sqrt(5)), harness.score(1 / math.sqrt(3))]
    assert [doc.metadata['score'] for doc in found] == pytest.approx(expected, abs=1e-6)


async def test_metadata_round_trips(store):
    _harness, ai, name = store
    metadata = {'src': 7, 'tags': ['x', 'y'], 'nested': {'a': 'b', 'n': 1.5}, 'ok': True, 'text': 'café'}
    await ai.index(indexer=name, documents=[Document.from_text('aaa', metadata), Document.from_text('bbb')])
    found = await ai.retrieve(retriever=name, query='a', options={'k': 2})
    assert [doc.model_dump(exclude_none=True) for doc in found] == [
        {'content': [{'text': 'aaa'}], 'metadata': metadata},
        {'content': [{'text': 'bbb'}]},
    ]


async def test_reindexing_deduplicates(store):
    _harness, ai, name = store
    await ai.index(indexer=name, documents=documents())
    await ai.index(indexer=name, documents=documents()[:2])
    found = await ai.retrieve(retriever=name, query='a', options={'k': 100})
    assert sorted(doc.text for doc in found) == sorted(text for text, _ in DOCS)


async def test_k_bounds_and_default(store):
    harness, ai, name = store
    many = [Document.from_text('a' * n + 'b') for n in range(1, 13)]
    await ai.index(indexer=name, documents=many)
    assert len(await ai.retrieve(retriever=name, query='a')) == harness.default_k
    assert len(await ai.retrieve(retriever=name, query='a', options={'k': 1})) == 1
    assert len(await ai.retrieve(retriever=name, query='a', options={'k': 100})) == 12
    for bad in (0, -1, 100000):
        with pytest.raises(GenkitError) as caught:
            await ai.retrieve(retriever=name, query='a', options={'k': bad})
        assert caught.value.status == 'INVALID_ARGUMENT'


async def test_filters(store):
    harness, ai, name = store
    await ai.index(indexer=name, documents=documents())
    found = await ai.retrieve(retriever=name, query='a', options=harness.filter_options('src', {'$gte': 2}))
    assert [doc.text for doc in found] == ['aab', 'abc']
    found = await ai.retrieve(
        retriever=name, query='a', options=harness.filter_options('tag', {'$in': ['x']})
    )
    assert [doc.text for doc in found] == ['abc']
    found = await ai.retrieve(retriever=name, query='a', options=harness.filter_options('src', 1))
    assert [doc.text for doc in found] == ['aaa']


async def test_empty_store(store):
    _harness, ai, name = store
    assert await ai.retrieve(retriever=name, query='a') == []


async def test_dimension_mismatch_is_a_typed_error(store):
    harness, ai, name = store
    await ai.index(indexer=name, documents=documents()[:1])
    other = Genkit()
    define_toy_embedder(other, 'toy4', letters='abcd')
    wrong = harness.define(other, 'toy4')
    with pytest.raises(VectorStoreError) as caught:
        await other.index(indexer=wrong, documents=documents())
    assert caught.value.status == 'INVALID_ARGUMENT'
    assert caught.value.store == name
    with pytest.raises(VectorStoreError) as caught:
        await other.retrieve(retriever=wrong, query='a')
    assert caught.value.status == 'INVALID_ARGUMENT'


async def test_unknown_table_or_collection_is_not_found(store):
    harness, _ai, _name = store
    other = Genkit()
    define_toy_embedder(other, 'toy')
    missing = harness.define_missing(other, 'toy')
    with pytest.raises(VectorStoreError) as caught:
        await other.retrieve(retriever=missing, query='a')
    assert caught.value.status == 'NOT_FOUND'
    assert caught.value.store == missing


async def test_server_down_is_unavailable_naming_the_store(store):
    harness, _ai, _name = store
    if not harness.has_server:
        pytest.skip('an embedded Chroma has no server to be down')
    other = Genkit()
    define_toy_embedder(other, 'toy')
    down = harness.define_down(other, 'toy')
    for call in (
        other.index(indexer=down, documents=documents()),
        other.retrieve(retriever=down, query='a'),
    ):
        with pytest.raises(VectorStoreError) as caught:
            await call
        assert caught.value.status == 'UNAVAILABLE'
        assert caught.value.store == down
        assert down in str(caught.value)


async def test_nothing_indexed_before_a_failure_is_lost(store):
    harness, ai, name = store
    await ai.index(indexer=name, documents=documents()[:3])

    async def failing(request):
        raise GenkitError(status='UNAVAILABLE', message='embedder down')

    broken = Genkit()
    broken.define_embedder('failing', failing)
    broken_name = harness.define(broken, 'failing')
    with pytest.raises(GenkitError):
        await broken.index(indexer=broken_name, documents=documents()[3:])
    found = await ai.retrieve(retriever=name, query='a', options={'k': 100})
    assert sorted(doc.text for doc in found) == ['aaa', 'abc', 'bbb']
