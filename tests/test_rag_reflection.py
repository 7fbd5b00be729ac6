"""Retrievers, indexers and rerankers as the Dev UI sees them: the real reflection server (spec §1.6)."""

from __future__ import annotations

import json

import pytest

from ._reflection import get, post, serve_reflection

APP = """
from genkit import Document
from pydantic import BaseModel
from genkit_parity import Genkit, CommonRetrieverOptions, CommonRerankerOptions

ai = Genkit()

class RetOptions(CommonRetrieverOptions):
    prefix: str | None = None

class IdxOptions(BaseModel):
    ns: str | None = None

class Limit(BaseModel):
    limit: float

fruit = ['apple pie', 'banana split']

def ret(query, options):
    k = options.k if options and options.k else len(fruit)
    return [Document.from_text(t, {'idx': i, 'q': query.text}) for i, t in enumerate(fruit[:k])]

ai.define_retriever('test/ret', ret, config_schema=RetOptions, info={'label': 'Test Retriever'})
ai.define_simple_retriever('simple/strings', lambda q, c: ['s1'])
ai.define_simple_retriever('simple/cfg', lambda q, c: [f'{q.text}:{c.limit:g}'], config_schema=Limit)
ai.define_indexer('test/idx', lambda docs, o: None, config_schema=IdxOptions,
                  embedder_info={'label': 'Test Emb', 'dimensions': 3})
def score_one(query, docs, options):
    return [Document(content=d.content, metadata={'score': 1}) for d in docs]

ai.define_reranker('test/rr', score_one, config_schema=CommonRerankerOptions, info={'label': 'Test RR'})
"""

DRAFT_07 = 'http://json-schema.org/draft-07/schema#'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    with serve_reflection(APP, tmp_path_factory.mktemp('rag-reflection')) as url:
        yield url, get(f'{url}/api/actions')


def test_retriever_listing(server):
    _, actions = server
    ret = actions['/retriever/test/ret']
    assert ret['key'] == '/retriever/test/ret'
    assert ret['name'] == 'test/ret'
    assert ret['metadata'] == {
        'type': 'retriever',
        'info': {'label': 'Test Retriever'},
        'retriever': {
            'customOptions': {
                'type': 'object',
                'properties': {
                    'k': {'type': 'integer', 'description': 'Number of documents to retrieve'},
                    'prefix': {'type': 'string'},
                },
                'additionalProperties': True,
                '$schema': DRAFT_07,
            }
        },
    }
    schema = ret['inputSchema']
    assert schema['type'] == 'object'
    assert schema['required'] == ['query']
    assert schema['$schema'] == DRAFT_07
    assert set(schema['properties']['options']['properties']) == {'k', 'prefix'}
    assert schema['properties']['query']['required'] == ['content']
    variants = schema['properties']['query']['properties']['content']['items']['anyOf']
    assert {v['required'][0] for v in variants if v.get('required')} >= {
        'text',
        'media',
        'toolRequest',
        'toolResponse',
    }
    assert ret['outputSchema']['required'] == ['documents']
    assert ret['outputSchema']['properties']['documents']['items']['required'] == ['content']


def test_simple_retriever_listing_drops_undefined_parts(server):
    _, actions = server
    strings = actions['/retriever/simple/strings']
    assert strings['metadata'] == {'type': 'retriever', 'retriever': {}}
    assert strings['inputSchema']['properties']['options'] == {}
    cfg = actions['/retriever/simple/cfg']['metadata']['retriever']['customOptions']
    assert cfg == {
        'type': 'object',
        'properties': {'limit': {'type': 'number'}},
        'required': ['limit'],
        'additionalProperties': True,
        '$schema': DRAFT_07,
    }


def test_indexer_and_reranker_listing(server):
    _, actions = server
    idx = actions['/indexer/test/idx']
    assert idx['metadata'] == {
        'type': 'indexer',
        'embedderInfo': {'label': 'Test Emb', 'dimensions': 3},
        'indexer': {
            'customOptions': {
                'type': 'object',
                'properties': {'ns': {'type': 'string'}},
                'additionalProperties': True,
                '$schema': DRAFT_07,
            }
        },
    }
    assert idx['inputSchema']['required'] == ['documents']
    assert idx['outputSchema'] == {'$schema': DRAFT_07}
    rr = actions['/reranker/test/rr']
    assert rr['metadata']['type'] == 'reranker'
    assert rr['metadata']['info'] == {'label': 'Test RR'}
    assert rr['metadata']['reranker']['customOptions']['properties']['k']['type'] == 'integer'
    assert rr['inputSchema']['required'] == ['query', 'documents']
    item = rr['outputSchema']['properties']['documents']['items']
    assert item['required'] == ['content', 'metadata']
    assert item['properties']['metadata'] == {
        'type': 'object',
        'properties': {'score': {'type': 'number'}},
        'required': ['score'],
        'additionalProperties': True,
    }


def test_run_a_retriever_from_the_dev_ui(server):
    url, _ = server
    status, body = post(
        f'{url}/api/runAction',
        {'key': '/retriever/test/ret', 'input': {'query': {'content': [{'text': 'x'}]}, 'options': {'k': 1}}},
    )
    assert status == 200, body
    reply = json.loads(body)
    assert reply['result'] == {
        'documents': [{'content': [{'text': 'apple pie'}], 'metadata': {'idx': 0, 'q': 'x'}}]
    }
    assert len(reply['telemetry']['traceId']) == 32


def test_bad_options_from_the_dev_ui_name_the_field(server):
    url, _ = server
    status, body = post(
        f'{url}/api/runAction',
        {
            'key': '/retriever/test/ret',
            'input': {'query': {'content': [{'text': 'x'}]}, 'options': {'k': 'two'}},
        },
    )
    # genkit's reflection server answers 200 with the error as JSON (status code 3 = INVALID_ARGUMENT).
    assert status == 200, body
    error = json.loads(body)['error']
    assert error['code'] == 3
    assert error['message'].startswith('Schema validation failed. Parse Errors:\n\n- options.k:')


def test_run_a_reranker_and_an_indexer_from_the_dev_ui(server):
    url, _ = server
    status, body = post(
        f'{url}/api/runAction',
        {
            'key': '/reranker/test/rr',
            'input': {'query': {'content': [{'text': 'q'}]}, 'documents': [{'content': [{'text': 'd'}]}]},
        },
    )
    assert status == 200, body
    assert json.loads(body)['result'] == {
        'documents': [{'content': [{'text': 'd'}], 'metadata': {'score': 1}}]
    }
    status, body = post(
        f'{url}/api/runAction',
        {'key': '/indexer/test/idx', 'input': {'documents': [{'content': [{'text': 'd'}]}]}},
    )
    assert status == 200, body
    assert json.loads(body).get('result') is None
