"""Chroma specifics on the real chromadb (embedded PersistentClient, explicit embeddings)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from genkit import Document

from genkit_parity import Genkit, VectorStoreError
from genkit_parity.testing import define_toy_embedder

from ._loopback import LoopbackServer

os.environ.setdefault('ANONYMIZED_TELEMETRY', 'False')
chromadb = pytest.importorskip('chromadb')

from genkit_parity.chroma import (  # noqa: E402
    chroma_indexer_ref,
    chroma_retriever_ref,
    create_chroma_collection,
    define_chroma_vector_store,
    delete_chroma_collection,
)


@pytest.fixture
def client(tmp_path):
    return chromadb.PersistentClient(
        path=str(tmp_path), settings=chromadb.Settings(anonymized_telemetry=False)
    )


async def test_many_results_keep_their_own_metadata_and_js_layout(client):
    # JS fails on any query with two or more results (metadata read at the wrong depth).
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    define_chroma_vector_store(
        ai,
        collection_name='facts',
        embedder='toy',
        client=client,
        create_collection_if_missing=True,
        collection_metadata={'hnsw:space': 'cosine'},
    )
    docs = [
        Document.from_text('aaa', {'n': 1}),
        Document.from_text('aab', {'n': 2}),
        Document.from_text('abc', {'n': 3}),
    ]
    await ai.index(indexer=chroma_indexer_ref('facts'), documents=docs)
    found = await ai.retrieve(retriever=chroma_retriever_ref('facts'), query='a', options={'k': 3})
    assert [(doc.text, doc.metadata) for doc in found] == [
        ('aaa', {'n': 1}),
        ('aab', {'n': 2}),
        ('abc', {'n': 3}),
    ]
    row = client.get_collection('facts').get(where={'n': 2}, include=['metadatas', 'documents'])
    assert row['documents'] == ['aab']
    assert row['metadatas'] == [{'docMetadata': '{"n":2}', 'dataType': 'text', 'n': 2}]
    assert row['ids'] == [hashlib.md5(b'{"content":[{"text":"aab"}],"metadata":{"n":2}}').hexdigest()]


async def test_where_where_document_and_distances(client):
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    await create_chroma_collection(name='scored', client=client, metadata={'hnsw:space': 'cosine'})
    define_chroma_vector_store(ai, collection_name='scored', embedder='toy', client=client)
    await ai.index(
        indexer='chroma/scored',
        documents=[Document.from_text('aaa', {'n': 1}), Document.from_text('aab', {'n': 2})],
    )
    found = await ai.retrieve(
        retriever='chroma/scored',
        query='a',
        options={'where': {'n': {'$gte': 2}}, 'whereDocument': {'$contains': 'b'}, 'include': ['distances']},
    )
    assert [doc.text for doc in found] == ['aab']
    assert found[0].metadata['score'] == pytest.approx(1 - 2 / 5**0.5, abs=1e-6)
    found = await ai.retrieve(retriever='chroma/scored', query='a')
    assert 'score' not in (found[0].metadata or {})


async def test_media_documents_and_collection_lifecycle(client):
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    await create_chroma_collection(name='media', client=client)
    define_chroma_vector_store(ai, collection_name='media', embedder='toy', client=client)
    media = Document.from_media('data:image/png;base64,abc', 'image/png', {'k': 'v'})
    await ai.index(indexer='chroma/media', documents=[media])
    (found,) = await ai.retrieve(retriever='chroma/media', query='a')
    assert json.loads(found.model_dump_json(exclude_none=True)) == {
        'content': [{'media': {'contentType': 'image/png', 'url': 'data:image/png;base64,abc'}}],
        'metadata': {'k': 'v'},
    }
    await delete_chroma_collection(name='media', client=client)
    with pytest.raises(VectorStoreError) as caught:
        await ai.retrieve(retriever='chroma/media', query='a')
    assert caught.value.status == 'NOT_FOUND'


async def test_an_index_call_larger_than_one_chroma_batch(client):
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    define_chroma_vector_store(
        ai, collection_name='big', embedder='toy', client=client, create_collection_if_missing=True
    )
    docs = [Document.from_text(f'{i} ' + 'a' * (i % 7 + 1)) for i in range(2500)]
    await ai.index(indexer='chroma/big', documents=docs)
    assert client.get_collection('big').count() == 2500


async def test_a_collection_deleted_and_created_again_is_found_again(client):
    # The plugin keeps the collection it looked up; once that one is gone, the next call
    # looks the name up again (JS looks it up on every call), for queries and writes alike.
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    define_chroma_vector_store(ai, collection_name='again', embedder='toy', client=client)
    client.create_collection('again')
    await ai.index(indexer='chroma/again', documents=[Document.from_text('old')])
    assert [d.text for d in await ai.retrieve(retriever='chroma/again', query='old')] == ['old']
    client.delete_collection('again')
    client.create_collection('again')
    assert await ai.retrieve(retriever='chroma/again', query='old') == []
    await ai.index(indexer='chroma/again', documents=[Document.from_text('new')])
    assert [d.text for d in await ai.retrieve(retriever='chroma/again', query='new')] == ['new']
    assert client.get_collection('again').count() == 1
    client.delete_collection('again')
    client.create_collection('again')
    await ai.index(indexer='chroma/again', documents=[Document.from_text('newer')])
    assert client.get_collection('again').get()['documents'] == ['newer']


@pytest.mark.parametrize(
    ('data', 'data_type', 'metadata'),
    [('aab', 'text', {'n': 2, 'tags': ['x', {'y': None}]}), ('', None, None), ('ü', '', {})],
)
def test_documents_rebuilt_from_chroma_rows_equal_validated_ones(data, data_type, metadata):
    # The retriever builds its text documents without validation (it was most of its time);
    # they must be the very documents validation gives, and stay guarded on assignment.
    from pydantic import ValidationError

    from genkit_parity._vectordocs import doc_from_data

    built = doc_from_data(data, data_type, metadata)
    validated = Document.model_validate({'content': [{'text': data}], 'metadata': metadata})
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert built.model_fields_set == validated.model_fields_set
    assert built.content[0].model_fields_set == validated.content[0].model_fields_set
    assert built.text == data
    with pytest.raises(ValidationError):
        built.content[0].media = {'url': 'https://example.com/a.png'}
    # Each call builds its own objects (nothing shared with the blank templates).
    again = doc_from_data(data, data_type, metadata)
    assert again.content[0] is not built.content[0]


def test_stored_doc_metadata_that_is_not_an_object_is_still_refused():
    from pydantic import ValidationError

    from genkit_parity._vectordocs import doc_from_data

    with pytest.raises(ValidationError):
        doc_from_data('aab', 'text', json.loads('[1, 2]'))


def test_doc_metadata_of_a_query_is_parsed_in_one_go_and_row_by_row_when_that_would_misalign():
    from genkit_parity.chroma import _doc_metadata, _documents

    rows = [
        {'docMetadata': '{"n":1}'},
        None,
        {'dataType': 'text'},
        {'docMetadata': ''},
        {'docMetadata': '[2]'},
    ]
    assert _doc_metadata(rows) == [{'n': 1}, None, None, None, [2]]
    # Texts that are not one JSON value each would shift the rows after them if joined.
    with pytest.raises(json.JSONDecodeError):
        _doc_metadata([{'docMetadata': '1,2'}, {'docMetadata': '{"n":3}'}])
    assert _doc_metadata([{'docMetadata': '"a"'}, {'docMetadata': '{"b":[1]}'}]) == ['a', {'b': [1]}]
    found = _documents(['x', None], [{'docMetadata': '{"n":1}'}, None], [0.5, 1])
    assert [(doc.text, doc.metadata) for doc in found] == [
        ('x', {'n': 1, 'score': 0.5}),
        ('', {'score': 1.0}),
    ]


def _define_nan_embedder(ai) -> None:
    """Embeds 'nan' as [nan, 1, 1] and anything else as the toy embedder would."""
    import genkit

    async def embed(request):
        texts = [
            Document.model_validate(doc).text if not isinstance(doc, Document) else doc.text
            for doc in request.input
        ]
        vectors = [
            [float('nan'), 1.0, 1.0] if text == 'nan' else [float(text.count(c)) for c in 'abc']
            for text in texts
        ]
        return genkit.embedder.EmbedResponse(embeddings=[genkit.Embedding(embedding=v) for v in vectors])

    ai.define_embedder('nanny', embed)


async def test_a_document_twice_in_one_call_is_stored_once_and_bad_queries_are_refused(client):
    ai = Genkit()
    _define_nan_embedder(ai)
    define_chroma_vector_store(
        ai, collection_name='twice', embedder='nanny', client=client, create_collection_if_missing=True
    )
    same = Document.from_text('ccc', {'n': 1})
    await ai.index(indexer='chroma/twice', documents=[same, Document.from_text('aab'), same])
    assert client.get_collection('twice').count() == 2
    found = await ai.retrieve(retriever='chroma/twice', query='c', options={'k': 5})
    assert sorted(doc.text for doc in found) == ['aab', 'ccc']
    # Chroma answers a NaN query with every row scored NaN in no order: refused instead.
    with pytest.raises(VectorStoreError) as caught:
        await ai.retrieve(retriever='chroma/twice', query='nan')
    assert caught.value.status == 'INVALID_ARGUMENT' and 'NaN' in str(caught.value)
    # chromadb would store a NaN embedding: refused, naming the document, nothing written.
    with pytest.raises(VectorStoreError, match='embedding of document 1 contains NaN'):
        await ai.index(
            indexer='chroma/twice', documents=[Document.from_text('bbb'), Document.from_text('nan')]
        )
    assert client.get_collection('twice').count() == 2
    with pytest.raises(VectorStoreError) as caught:
        await create_chroma_collection(name='twice', client=client)
    assert caught.value.status == 'ALREADY_EXISTS'


@pytest.mark.parametrize(
    ('code', 'status'),
    [
        (404, 'FAILED_PRECONDITION'),
        (401, 'UNAUTHENTICATED'),
        (429, 'RESOURCE_EXHAUSTED'),
        (503, 'UNAVAILABLE'),
    ],
)
async def test_a_server_that_answers_with_an_http_error_is_named(code, status):
    # chromadb turns these replies into a ValueError with no message.
    # chromadb never closes the client it fails to build: one connection per request.
    server = LoopbackServer(lambda request: (code, {'error': 'nope'}), keep_alive=False).start()
    try:
        ai = Genkit()
        define_toy_embedder(ai, 'toy')
        host, port = server.url.removeprefix('http://').split(':')
        define_chroma_vector_store(
            ai, collection_name='c', embedder='toy', client_params={'host': host, 'port': int(port)}
        )
        with pytest.raises(VectorStoreError) as caught:
            await ai.retrieve(retriever='chroma/c', query='a')
        assert caught.value.status == status
        assert f'{server.url}/api/v2/' in str(caught.value) and f'answered HTTP {code}' in str(caught.value)
        assert server.requests and server.requests[0].path.startswith('/api/v2/')
    finally:
        server.stop()
