"""Vertex AI reranker against a loopback server speaking the Discovery Engine ranking API.

The expected requests are the ones observed from the JS plugin (spec rag.md §5).
"""

from __future__ import annotations

import json

import pytest
from genkit import Document, GenkitError

from genkit_parity import Genkit, VectorStoreError
from genkit_parity.vertexai import vertex_reranker_ref, vertex_rerankers

from ._loopback import LoopbackServer, free_port

DOCS = [
    Document.from_text('aaa', {'id': 'A'}),
    Document.from_text('bbb'),
    Document.from_text('ccc', {'src': 'x'}),
]
PATH = '/v1/projects/my-proj/locations/{}/rankingConfigs/default_ranking_config:rank'


@pytest.fixture
def server():
    replies = {
        'next': (
            200,
            {
                'records': [
                    {'id': '2', 'score': 0.91, 'content': 'ccc'},
                    {'id': '0', 'score': 0.33, 'content': 'aaa'},
                ]
            },
        )
    }
    made = LoopbackServer(lambda request: replies['next']).start()
    made.replies = replies  # type: ignore[attr-defined]
    yield made
    made.stop()


def make_ai(server, **kwargs):
    ai = Genkit()
    vertex_rerankers(
        ai,
        project_id='my-proj',
        location='global',
        credentials=lambda: 'fake-token',
        endpoint=server.url,
        **kwargs,
    )
    return ai


async def test_request_is_byte_for_byte_js_and_scores_map_back_in_api_order(server):
    ai = make_ai(server)
    ranked = await ai.rerank(
        reranker=vertex_reranker_ref(),
        query='which?',
        documents=DOCS,
        options={'topN': 2, 'ignoreRecordDetailsInResponse': True},
    )
    (request,) = server.requests
    assert request.method == 'POST'
    assert request.path == PATH.format('global')
    assert request.headers['Authorization'] == 'Bearer fake-token'
    assert request.headers['x-goog-user-project'] == 'my-proj'
    assert request.headers['Content-Type'] == 'application/json'
    # JS's JSON.stringify of the observed body, byte for byte.
    assert request.body == (
        b'{"model":"semantic-ranker-default@latest","query":"which?","records":[{"id":"0","content":"aaa"},'
        b'{"id":"1","content":"bbb"},{"id":"2","content":"ccc"}],"topN":2,"ignoreRecordDetailsInResponse":true}'
    )
    assert [doc.model_dump(exclude_none=True) for doc in ranked] == [
        {'content': [{'text': 'ccc'}], 'metadata': {'src': 'x', 'score': 0.91}},
        {'content': [{'text': 'aaa'}], 'metadata': {'id': 'A', 'score': 0.33}},
    ]
    assert [doc.score for doc in ranked] == [0.91, 0.33]


async def test_per_call_location_goes_to_the_url_not_the_body(server):
    ai = make_ai(server)
    await ai.rerank(
        reranker='vertex-rerankers/semantic-ranker-fast-004',
        query='q2',
        documents=DOCS,
        options={'location': 'eu'},
    )
    (request,) = server.requests
    assert request.path == PATH.format('eu')
    assert request.json() == {
        'model': 'semantic-ranker-fast-004',
        'query': 'q2',
        'records': [
            {'id': '0', 'content': 'aaa'},
            {'id': '1', 'content': 'bbb'},
            {'id': '2', 'content': 'ccc'},
        ],
    }


async def test_actions_and_metadata_are_jss(server):
    ai = make_ai(server)
    for model in (
        'semantic-ranker-default@latest',
        'semantic-ranker-default-004',
        'semantic-ranker-fast-004',
        'semantic-ranker-default-003',
        'semantic-ranker-default-002',
    ):
        action = await ai.registry.resolve_action('reranker', f'vertex-rerankers/{model}')
        assert action is not None
    action = await ai.registry.resolve_action('reranker', 'vertex-rerankers/semantic-ranker-default@latest')
    expected = json.loads(
        '{"type":"reranker","reranker":{"customOptions":{"type":"object","properties":{"topN":{"type":"number","description":"Number of top documents to rerank"},"ignoreRecordDetailsInResponse":{"type":"boolean","description":"If true, the response will contain only record ID and score. By default, it is false, the response will contain record details."},"location":{"type":"string","description":"Google Cloud location, e.g., \\"us-central1\\""}},"additionalProperties":true,"$schema":"http://json-schema.org/draft-07/schema#"}}}'  # noqa: E501
    )
    assert action.metadata == expected
    ref = vertex_reranker_ref()
    assert (ref.name, ref.info) == (
        'vertex-rerankers/semantic-ranker-default@latest',
        {'supports': {'media': False}},
    )


async def test_async_token_provider_and_custom_models(server):
    async def token():
        return 'async-token'

    server.replies['next'] = (200, {'records': [{'id': '0', 'score': 0.5}]})
    ai = Genkit()
    vertex_rerankers(
        ai,
        project_id='p2',
        location='us-central1',
        models=['semantic-ranker-512@latest'],
        credentials=token,
        endpoint=server.url,
    )
    await ai.rerank(reranker='vertex-rerankers/semantic-ranker-512@latest', query='q', documents=DOCS[:1])
    (request,) = server.requests
    assert request.headers['Authorization'] == 'Bearer async-token'
    assert request.path == '/v1/projects/p2/locations/us-central1/rankingConfigs/default_ranking_config:rank'
    assert (
        await ai.registry.resolve_action('reranker', 'vertex-rerankers/semantic-ranker-default@latest')
        is None
    )


async def test_api_error_is_jss_message_with_the_http_status(server):
    server.replies['next'] = (
        403,
        {'error': {'code': 403, 'message': 'Permission denied on project', 'status': 'PERMISSION_DENIED'}},
    )
    ai = make_ai(server)
    with pytest.raises(GenkitError) as caught:
        await ai.rerank(reranker=vertex_reranker_ref(), query='q', documents=DOCS)
    url = server.url + PATH.format('global')
    assert caught.value.status == 'PERMISSION_DENIED'
    assert (
        f'Failed to fetch from {url}: Error fetching from {url}: [403 Forbidden] Permission denied on project'
        in str(caught.value)
    )


async def test_server_down_is_unavailable_naming_the_reranker():
    ai = Genkit()
    vertex_rerankers(ai, project_id='p', credentials=lambda: 't', endpoint=f'http://127.0.0.1:{free_port()}')
    with pytest.raises(VectorStoreError) as caught:
        await ai.rerank(reranker=vertex_reranker_ref(), query='q', documents=DOCS)
    assert caught.value.status == 'UNAVAILABLE'
    assert caught.value.store == 'vertex-rerankers/semantic-ranker-default@latest'


async def test_bad_arguments_are_typed():
    ai = Genkit()
    with pytest.raises(TypeError, match='project_id'):
        vertex_rerankers(ai, project_id='')
    with pytest.raises(TypeError, match='models'):
        vertex_rerankers(ai, project_id='p', models=[''])
    with pytest.raises(TypeError, match="not the str 'abc'"):  # not rerankers a, b and c
        vertex_rerankers(ai, project_id='p', models='abc')
    with pytest.raises(TypeError, match='credentials must be a callable'):
        vertex_rerankers(ai, project_id='p', credentials=5)
    # Both go into the URL the bearer token is sent to.
    for hostile in ('../../x', 'a?x=1', 'a#b', 'a/b', '%2e%2e'):
        with pytest.raises(ValueError, match='project_id'):
            vertex_rerankers(ai, project_id=hostile)
        with pytest.raises(ValueError, match='location'):
            vertex_rerankers(ai, project_id='p', location=hostile)


async def test_a_per_call_location_that_is_not_one_url_segment_is_refused_before_sending(server):
    ai = make_ai(server)
    for hostile in ('../../../evil', 'eu?x=1', 'eu#b'):
        with pytest.raises(GenkitError) as caught:
            await ai.rerank(
                reranker=vertex_reranker_ref(), query='q', documents=DOCS, options={'location': hostile}
            )
        assert caught.value.status == 'INVALID_ARGUMENT' and 'location' in str(caught.value)
    assert server.requests == []


async def test_a_record_naming_no_input_document_is_an_error_not_a_wrong_document(server):
    ai = make_ai(server)
    # '-1' would be the last document by Python indexing; ' 1 ' and true name none either.
    for bad_id in ('7', '-1', ' 1 ', True, 1.0):
        server.replies['next'] = (200, {'records': [{'id': bad_id, 'score': 0.5}]})
        with pytest.raises(VectorStoreError, match='bad record'):
            await ai.rerank(reranker=vertex_reranker_ref(), query='q', documents=DOCS)
