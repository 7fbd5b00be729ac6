"""Pinecone's wire format, against a loopback server: the exact request bytes are asserted."""

from __future__ import annotations

import hashlib
import json

import pytest
from genkit import Document, GenkitError

from genkit_parity import Genkit, VectorStoreError
from genkit_parity.pinecone import define_pinecone_vector_store, pinecone_retriever_ref
from genkit_parity.testing import define_toy_embedder

from ._pinecone_server import FakePinecone


@pytest.fixture
def server():
    made = FakePinecone(3).start()
    yield made
    made.stop()


def make_ai(server, **kwargs):
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    define_pinecone_vector_store(
        ai, index_id='facts', embedder='toy', api_key='test-key', host=server.url, **kwargs
    )
    return ai


async def test_upsert_record_layout_is_jss_plus_scalar_keys(server):
    ai = make_ai(server)
    await ai.index(
        indexer='pinecone/facts',
        documents=[Document.from_text('aaa', {'src': 1, 'tags': ['x']}), Document.from_text('bbb')],
        options={'namespace': 'ns1'},
    )
    (request,) = server.requests
    assert (request.method, request.path) == ('POST', '/vectors/upsert')
    assert request.headers['Api-Key'] == 'test-key'
    assert request.headers['Content-Type'] == 'application/json'
    body = request.json()
    first, second = body['vectors']
    assert (
        first['id']
        == hashlib.md5(b'{"content":[{"text":"aaa"}],"metadata":{"src":1,"tags":["x"]}}').hexdigest()
    )
    assert first == {
        'id': first['id'],
        'values': [3, 0, 0],
        'metadata': {
            'docMetadata': '{"src":1,"tags":["x"]}',
            '_content': 'aaa',
            '_contentType': 'text',
            'src': 1,
        },
    }
    assert second['metadata'] == {'_content': 'bbb', '_contentType': 'text'}
    assert second['id'] == '615810d9e26e082236497e14a564bc47'  # JS's md5 of {"content":[{"text":"bbb"}]}
    assert body['namespace'] == 'ns1'
    assert request.body == (  # JS's JSON.stringify text, byte for byte
        b'{"vectors":[{"id":"%s","values":[3,0,0],"metadata":{"docMetadata":"{\\"src\\":1,\\"tags\\":[\\"x\\"]}",'
        b'"_content":"aaa","_contentType":"text","src":1}},{"id":"615810d9e26e082236497e14a564bc47",'
        b'"values":[0,3,0],"metadata":{"_content":"bbb","_contentType":"text"}}],"namespace":"ns1"}'
        % first['id'].encode()
    )


async def test_query_sends_filter_sparse_vector_and_namespace(server):
    ai = make_ai(server)
    await ai.index(indexer='pinecone/facts', documents=[Document.from_text('aaa', {'src': 1})])
    found = await ai.retrieve(
        retriever=pinecone_retriever_ref('facts'),
        query='a',
        options={
            'k': 2,
            'filter': {'src': {'$eq': 1}},
            'sparse_vector': {'indices': [1, 5], 'values': [0.5, 0.25]},
        },
    )
    query = server.requests[-1]
    assert query.path == '/query'
    assert query.body == (
        b'{"topK":2,"vector":[1,0,0],"includeValues":false,"includeMetadata":true,'
        b'"filter":{"src":{"$eq":1}},"sparseVector":{"indices":[1,5],"values":[0.5,0.25]}}'
    )
    assert [doc.model_dump(exclude_none=True) for doc in found] == [
        {'content': [{'text': 'aaa'}], 'metadata': {'src': 1}}
    ]


async def test_k_is_optional_and_namespaces_are_separate(server):
    ai = make_ai(server)
    await ai.index(
        indexer='pinecone/facts', documents=[Document.from_text('aaa')], options={'namespace': 'a'}
    )
    assert await ai.retrieve(retriever='pinecone/facts', query='a') == []
    assert json.loads(server.requests[-1].body)['topK'] == 10
    found = await ai.retrieve(retriever='pinecone/facts', query='a', options={'namespace': 'a'})
    assert [doc.text for doc in found] == ['aaa']


async def test_custom_content_key_and_host_discovery(server):
    ai = Genkit()
    define_toy_embedder(ai, 'toy')
    define_pinecone_vector_store(
        ai, index_id='facts', embedder='toy', api_key='test-key', content_key='body', control_plane=server.url
    )
    await ai.index(indexer='pinecone/facts', documents=[Document.from_text('abc')])
    assert server.requests[0].method == 'GET' and server.requests[0].path == '/indexes/facts'
    assert server.requests[1].json()['vectors'][0]['metadata'] == {'body': 'abc', '_contentType': 'text'}
    await ai.retrieve(retriever='pinecone/facts', query='a')
    assert [r.path for r in server.requests] == ['/indexes/facts', '/vectors/upsert', '/query']


async def test_missing_api_key_is_jss_message(monkeypatch):
    monkeypatch.delenv('PINECONE_API_KEY', raising=False)
    with pytest.raises(GenkitError) as caught:
        define_pinecone_vector_store(Genkit(), index_id='facts', embedder='toy')
    assert 'Please pass in the API key or set PINECONE_API_KEY environment variable.' in str(caught.value)


async def test_unequal_sparse_vector_is_refused(server):
    ai = make_ai(server)
    with pytest.raises(GenkitError) as caught:
        await ai.retrieve(
            retriever='pinecone/facts', query='a', options={'sparse_vector': {'indices': [1], 'values': []}}
        )
    assert caught.value.status == 'INVALID_ARGUMENT'


async def test_large_index_calls_are_split_into_upserts_of_100(server):
    ai = make_ai(server)
    docs = [Document.from_text('a' * (i % 9 + 1) + 'b' * (i // 9)) for i in range(250)]
    await ai.index(indexer='pinecone/facts', documents=docs)
    sizes = [len(r.json()['vectors']) for r in server.requests]
    assert sizes == [100, 100, 50]
    assert len(server.namespaces['']) == 250


async def test_nan_embeddings_and_index_ids_that_are_not_one_url_segment_are_refused(server):
    import genkit

    ai = Genkit()

    async def embed(request):
        texts = [Document.model_validate(doc).text for doc in request.input]
        return genkit.embedder.EmbedResponse(
            embeddings=[
                genkit.Embedding(embedding=[float('nan') if t != 'a' else 0.5, 1.0, 1.0]) for t in texts
            ]
        )

    ai.define_embedder('nan', embed)
    define_pinecone_vector_store(ai, index_id='facts', embedder='nan', api_key='test-key', host=server.url)
    with pytest.raises(VectorStoreError, match='embedding of document 1 contains NaN'):
        await ai.index(indexer='pinecone/facts', documents=[Document.from_text('a'), Document.from_text('b')])
    with pytest.raises(VectorStoreError, match='query embedding contains NaN'):
        await ai.retrieve(retriever='pinecone/facts', query='b')
    assert server.requests == []  # nothing sent
    # Without a host the index id goes into the control plane's URL (with the API key).
    for hostile in ('../x', 'facts/../facts', 'a?b=1', 'a#b', '.hidden'):
        with pytest.raises(ValueError, match='index_id'):
            define_pinecone_vector_store(ai, index_id=hostile, embedder='nan', api_key='k')
