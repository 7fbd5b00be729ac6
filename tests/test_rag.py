"""The RAG API against JS genkit@1.38.0's observed behaviour (spec rag.md §1)."""

from __future__ import annotations

import json
from typing import Any

import genkit
import pytest
from genkit import Document, GenkitError
from genkit.model import ModelInfo, ModelRequest, ModelResponse, Supports
from pydantic import BaseModel, ValidationError

from genkit_parity import (
    CommonRerankerOptions,
    CommonRetrieverOptions,
    Genkit,
    RankedDocument,
    extend,
    indexer_ref,
    reranker_ref,
    retriever_ref,
)
from genkit_parity.testing import define_toy_embedder

ROWS = [
    {'id': 1, 'body': 'row one', 'tag': 'x', 'extra': True},
    {'id': 2, 'body': 'row two', 'tag': 'y', 'extra': False},
]


def as_json(docs: list[Document]) -> list[dict[str, Any]]:
    return [d.model_dump(by_alias=True, exclude_none=True) for d in docs]


class PrefixOptions(CommonRetrieverOptions):
    prefix: str | None = None


def define_fruit_retriever(ai: Any) -> list[Any]:
    seen: list[Any] = []
    fruit = ['apple pie', 'banana split', 'cherry tart']

    def retrieve_fruit(query: Document, options: PrefixOptions | None) -> list[Document]:
        seen.append((query, options))
        k = options.k if options is not None and options.k is not None else len(fruit)
        return [Document.from_text(text, {'idx': i, 'q': query.text}) for i, text in enumerate(fruit[:k])]

    ai.define_retriever(
        'test/ret', retrieve_fruit, config_schema=PrefixOptions, info={'label': 'Test Retriever'}
    )
    return seen


# -- retrievers ----------------------------------------------------------------------------


async def test_retrieve_by_name_ref_and_action(ai):
    seen = define_fruit_retriever(ai)
    by_name = await ai.retrieve(retriever='test/ret', query='x', options={'k': 1})
    assert as_json(by_name) == [{'content': [{'text': 'apple pie'}], 'metadata': {'idx': 0, 'q': 'x'}}]
    query, options = seen[-1]
    assert isinstance(query, Document) and query.text == 'x'
    # A str query is built without Document.from_text's deep copy, to the same document.
    made = Document.from_text('x')
    assert query == made and query.model_fields_set == made.model_fields_set
    assert query.content[0].model_fields_set == made.content[0].model_fields_set
    with pytest.raises(ValidationError):
        query.content[0].media = 'not media'
    assert isinstance(options, PrefixOptions) and options.k == 1

    # JS takes a ref without `info` for an action (TypeError); here a ref resolves by name.
    y = Document.from_text('y')
    by_ref = await ai.retrieve(retriever=retriever_ref('test/ret'), query=y)
    assert [d.text for d in by_ref] == ['apple pie', 'banana split', 'cherry tart']
    assert seen[-1][1] is None
    # The caller's Document reaches the retriever as it is (as the indexer's documents do).
    assert seen[-1][0] is y

    action = await ai.registry.resolve_action(genkit.ActionKind.RETRIEVER, 'test/ret')
    by_action = await ai.retrieve(
        retriever=action, query={'content': [{'text': 'z'}]}, options=PrefixOptions(k=2)
    )
    assert [d.metadata['q'] for d in by_action] == ['z', 'z']


async def test_retriever_results_may_be_dicts_or_a_response(ai):
    ai.define_retriever('dicts', lambda q, o: [{'content': [{'text': 'd'}], 'metadata': {'m': 1}}])

    async def wrapped(q, o):
        return {'documents': [Document.from_text('w')]}

    ai.define_retriever('wrapped', wrapped)
    assert as_json(await ai.retrieve(retriever='dicts', query='q')) == [
        {'content': [{'text': 'd'}], 'metadata': {'m': 1}}
    ]
    assert as_json(await ai.retrieve(retriever='wrapped', query='q')) == [{'content': [{'text': 'w'}]}]


async def test_options_are_validated_naming_the_field(ai):
    define_fruit_retriever(ai)
    with pytest.raises(GenkitError) as raised:
        await ai.retrieve(retriever='test/ret', query='x', options={'k': 'two'})
    assert raised.value.status == 'INVALID_ARGUMENT'
    assert 'Schema validation failed. Parse Errors:' in str(raised.value)
    assert '- options.k:' in str(raised.value)


async def test_json_schema_config_is_validated_too(ai):
    schema = {'type': 'object', 'properties': {'limit': {'type': 'number'}}, 'required': ['limit']}
    ai.define_retriever('cfg', lambda q, o: [f'{q.text}:{o["limit"]}'], config_schema=schema)
    with pytest.raises(GenkitError) as raised:
        await ai.retrieve(retriever='cfg', query='q', options={'limit': 'many'})
    assert raised.value.status == 'INVALID_ARGUMENT'
    assert "- options.limit: 'many' is not of type 'number'" in str(raised.value)
    with pytest.raises(GenkitError, match="'limit' is a required property"):
        await ai.retrieve(retriever='cfg', query='q', options={})


async def test_unknown_retriever_is_not_found(ai):
    for target in ('nope', retriever_ref('nope')):
        with pytest.raises(GenkitError) as raised:
            await ai.retrieve(retriever=target, query='q')
        assert raised.value.status == 'NOT_FOUND'
        assert "Unable to resolve the retriever 'nope'" in str(raised.value)


async def test_bad_arguments_are_typed(ai):
    with pytest.raises(TypeError, match='fn must be callable'):
        ai.define_retriever('r', 'not a function')
    with pytest.raises(TypeError, match='config_schema must be a pydantic model class or a JSON Schema dict'):
        ai.define_retriever('r', lambda q, o: [], config_schema=int)
    with pytest.raises(ValueError, match='invalid JSON Schema'):
        ai.define_retriever('r', lambda q, o: [], config_schema={'type': 'wat'})
    with pytest.raises(TypeError, match='retriever must be a name, a ref or an action'):
        await ai.retrieve(retriever=3, query='q')
    ai.define_retriever('bad', lambda q, o: 'not a list')
    with pytest.raises(GenkitError, match="retriever 'bad' must return a list of documents"):
        await ai.retrieve(retriever='bad', query='q')
    with pytest.raises(GenkitError, match='query must be a Document'):
        await ai.retrieve(retriever='bad', query=42)


async def test_an_action_of_another_kind_is_refused(ai):
    define_fruit_retriever(ai)
    action = await ai.registry.resolve_action(genkit.ActionKind.RETRIEVER, 'test/ret')
    with pytest.raises(GenkitError, match="'test/ret' is a retriever action, not a reranker"):
        await ai.rerank(reranker=action, query='q', documents=[])


async def test_extend_adds_the_rag_api_to_a_plain_genkit():
    ai = extend(genkit.Genkit())
    ai.define_retriever('plain', lambda q, o: [q.text.upper()])
    assert [d.text for d in await ai.retrieve(retriever='plain', query='hi')] == ['HI']


# -- the simple retriever (spec §1.3, observed table) -------------------------------------


@pytest.mark.parametrize(
    ('options', 'items', 'expected'),
    [
        ({}, ['s1', 's2'], [{'content': [{'text': 's1'}]}, {'content': [{'text': 's2'}]}]),
        (
            {'content': 'body'},
            ROWS,
            [
                {'content': [{'text': 'row one'}], 'metadata': {'id': 1, 'tag': 'x', 'extra': True}},
                {'content': [{'text': 'row two'}], 'metadata': {'id': 2, 'tag': 'y', 'extra': False}},
            ],
        ),
        (
            {'content': 'body', 'metadata': ['id']},
            ROWS,
            [
                {'content': [{'text': 'row one'}], 'metadata': {'id': 1}},
                {'content': [{'text': 'row two'}], 'metadata': {'id': 2}},
            ],
        ),
        (
            {'content': lambda r: f'#{r["id"]}: {r["body"]}', 'metadata': lambda r: {'tag': r['tag']}},
            ROWS,
            [
                {'content': [{'text': '#1: row one'}], 'metadata': {'tag': 'x'}},
                {'content': [{'text': '#2: row two'}], 'metadata': {'tag': 'y'}},
            ],
        ),
        (
            {'content': lambda r: [{'text': r['body']}, {'text': '!'}]},
            ROWS,
            [
                {
                    'content': [{'text': 'row one'}, {'text': '!'}],
                    'metadata': {'id': 1, 'body': 'row one', 'tag': 'x', 'extra': True},
                },
                {
                    'content': [{'text': 'row two'}, {'text': '!'}],
                    'metadata': {'id': 2, 'body': 'row two', 'tag': 'y', 'extra': False},
                },
            ],
        ),
        (
            {'content': 'body', 'metadata': ['id', 'missing']},
            ROWS[:1],
            [{'content': [{'text': 'row one'}], 'metadata': {'id': 1}}],
        ),
    ],
)
async def test_simple_retriever_mapping(ai, options, items, expected):
    ai.define_simple_retriever('simple/x', lambda q, cfg: items, **options)
    assert as_json(await ai.retrieve(retriever='simple/x', query='q')) == expected


async def test_simple_retriever_errors_as_js(ai):
    ai.define_simple_retriever('simple/objects', lambda q, cfg: ROWS)
    with pytest.raises(GenkitError) as raised:
        await ai.retrieve(retriever='simple/objects', query='q')
    assert raised.value.status == 'INVALID_ARGUMENT'
    assert str(raised.value) == (
        'INVALID_ARGUMENT: Cannot convert item to document without content option. '
        'Item: {"id": 1, "body": "row one", "tag": "x", "extra": true}'
    )
    ai.define_simple_retriever('simple/null', lambda q, cfg: [None])
    with pytest.raises(GenkitError) as raised:
        await ai.retrieve(retriever='simple/null', query='q')
    assert str(raised.value) == 'INVALID_ARGUMENT: Items returned from simple retriever must be non-null.'
    ai.define_simple_retriever('simple/meta', lambda q, cfg: ROWS, content='body', metadata=42)  # type: ignore[arg-type]
    with pytest.raises(GenkitError, match='Unable to extract metadata from item with supplied options'):
        await ai.retrieve(retriever='simple/meta', query='q')


async def test_simple_retriever_config(ai):
    class Limit(BaseModel):
        limit: float

    async def handler(query: Document, config: Limit) -> list[str]:
        return [f'{query.text}:{config.limit:g}']

    ai.define_simple_retriever('simple/cfg', handler, config_schema=Limit)
    assert as_json(await ai.retrieve(retriever='simple/cfg', query='q', options={'limit': 7})) == [
        {'content': [{'text': 'q:7'}]}
    ]


# -- indexers ------------------------------------------------------------------------------


async def test_indexer_receives_documents_and_returns_nothing(ai):
    stored: list[tuple[list[Document], Any]] = []

    class Namespace(BaseModel):
        ns: str | None = None

    async def store(docs: list[Document], options: Namespace | None) -> None:
        stored.append((docs, options))

    ai.define_indexer(
        'test/idx', store, config_schema=Namespace, embedder_info={'label': 'Test Emb', 'dimensions': 3}
    )
    b = Document.from_text('b', {'m': 1})
    result = await ai.index(indexer=indexer_ref('test/idx'), documents=['a', b])
    assert result is None
    docs, options = stored[-1]
    assert as_json(docs) == [{'content': [{'text': 'a'}]}, {'content': [{'text': 'b'}], 'metadata': {'m': 1}}]
    # The caller's Document reaches the indexer as it is (as in JS), not as a copy.
    assert docs[1] is b
    assert options is None
    await ai.index(indexer='test/idx', documents=[], options={'ns': 'n1'})
    assert stored[-1][1] == Namespace(ns='n1')
    with pytest.raises(GenkitError) as raised:
        await ai.index(indexer='missing', documents=[])
    assert raised.value.status == 'NOT_FOUND'
    with pytest.raises(TypeError, match='documents must be a list'):
        await ai.index(indexer='test/idx', documents='abc')


# -- rerankers (spec §1.4 observed) --------------------------------------------------------


def define_length_reranker(ai: Any) -> None:
    def by_length(
        query: Document, docs: list[Document], options: CommonRerankerOptions | None
    ) -> list[Document]:
        scored = [
            Document(content=d.content, metadata={**(d.metadata or {}), 'score': len(d.text)}) for d in docs
        ]
        scored.sort(key=lambda d: d.metadata['score'], reverse=True)
        k = options.k if options is not None and options.k is not None else len(scored)
        return scored[:k]

    ai.define_reranker('test/rr', by_length, config_schema=CommonRerankerOptions, info={'label': 'Test RR'})


async def test_rerank_keeps_the_rerankers_order_and_scores(ai):
    define_length_reranker(ai)
    docs = [
        Document.from_text('aa', {'id': 'a'}),
        Document.from_text('bbbb', {'id': 'b'}),
        Document.from_text('c'),
    ]
    ranked = await ai.rerank(reranker=reranker_ref('test/rr'), query='q', documents=docs, options={'k': 2})
    assert all(isinstance(d, RankedDocument) for d in ranked)
    assert [(d.model_dump(by_alias=True, exclude_none=True), d.score, d.text) for d in ranked] == [
        ({'content': [{'text': 'bbbb'}], 'metadata': {'id': 'b', 'score': 4}}, 4, 'bbbb'),
        ({'content': [{'text': 'aa'}], 'metadata': {'id': 'a', 'score': 2}}, 2, 'aa'),
    ]


async def test_reranked_documents_must_carry_a_score(ai):
    ai.define_reranker('no-meta', lambda q, docs, o: docs)
    with pytest.raises(GenkitError) as raised:
        await ai.rerank(reranker='no-meta', query='q', documents=['x'])
    assert raised.value.status == 'INVALID_ARGUMENT'
    assert "- documents.0: must have required property 'metadata'" in str(raised.value)
    ai.define_reranker('no-score', lambda q, docs, o: [Document.from_text('x', {'other': 1})])
    with pytest.raises(GenkitError, match=r"documents\.0\.metadata: must have required property 'score'"):
        await ai.rerank(reranker='no-score', query='q', documents=['x'])
    ai.define_reranker('text-score', lambda q, docs, o: [Document.from_text('x', {'score': 'high'})])
    with pytest.raises(GenkitError, match=r'documents.0.metadata.score: must be number'):
        await ai.rerank(reranker='text-score', query='q', documents=['x'])


# -- generate(docs=...) (spec §1.9) --------------------------------------------------------

DOCS = [
    Document.from_text('doc zero'),
    Document.from_text('doc one', {'ref': 'R1'}),
    Document.from_text('doc two', {'id': 'ID2'}),
]
CONTEXT = (
    '\n\nUse the following information to complete your task:\n\n'
    '- [0]: doc zero\n- [R1]: doc one\n- [ID2]: doc two\n\n'
)


def recording_model(ai: Any, name: str, *, context: bool) -> list[Any]:
    requests: list[Any] = []

    async def model(request: ModelRequest, ctx: Any) -> ModelResponse:
        requests.append(request)
        return ModelResponse(message={'role': 'model', 'content': [{'text': 'ok'}]})

    ai.define_model(name, model, info=ModelInfo(supports=Supports(context=context, multiturn=True)))
    return requests


def message_json(request: Any) -> list[dict[str, Any]]:
    return [m.model_dump(by_alias=True, exclude_none=True) for m in request.messages]


async def test_docs_are_injected_with_js_text_for_a_plain_model(ai):
    requests = recording_model(ai, 'plain', context=False)
    await ai.generate(model='plain', prompt='Question?', docs=DOCS)
    assert message_json(requests[-1]) == [
        {
            'role': 'user',
            'content': [{'text': 'Question?'}, {'text': CONTEXT, 'metadata': {'purpose': 'context'}}],
        }
    ]
    assert as_json(requests[-1].docs) == as_json(DOCS)


async def test_docs_are_left_to_a_model_that_supports_context(ai):
    requests = recording_model(ai, 'contextual', context=True)
    await ai.generate(model='contextual', prompt='Question?', docs=DOCS)
    assert message_json(requests[-1]) == [{'role': 'user', 'content': [{'text': 'Question?'}]}]
    assert as_json(requests[-1].docs) == as_json(DOCS)
    # genkit 0.12's own Genkit keeps injecting (its behaviour for its own class).
    plain = genkit.Genkit()
    plain_requests = recording_model(plain, 'contextual', context=True)
    await plain.generate(model='contextual', prompt='Question?', docs=DOCS)
    assert message_json(plain_requests[-1])[0]['content'][1]['text'] == CONTEXT


async def test_docs_replace_a_pending_placeholder(ai):
    requests = recording_model(ai, 'plain', context=False)
    placeholder = {'text': '', 'metadata': {'purpose': 'context', 'pending': True}}
    messages = [{'role': 'user', 'content': [{'text': 'Q'}, placeholder, {'text': 'after'}]}]
    await ai.generate(model='plain', messages=messages, docs=DOCS)
    assert message_json(requests[-1]) == [
        {
            'role': 'user',
            'content': [
                {'text': 'Q'},
                {'text': CONTEXT, 'metadata': {'purpose': 'context'}},
                {'text': 'after'},
            ],
        }
    ]


# -- traces (spec §1.8) --------------------------------------------------------------------


def attributes(spans: Any, name: str) -> dict[str, Any]:
    found = [dict(s.attributes) for s in spans.get_finished_spans() if s.name == name]
    assert found, f'no span {name!r}'
    return found[-1]


async def test_calls_are_traced_as_js_action_spans(ai, spans):
    define_fruit_retriever(ai)
    define_length_reranker(ai)
    ai.define_indexer('test/idx', lambda docs, o: None)
    await ai.retrieve(retriever='test/ret', query='fruit', options={'k': 2})
    retrieved = attributes(spans, 'test/ret')
    assert retrieved['genkit:type'] == 'action'
    assert retrieved['genkit:metadata:subtype'] == 'retriever'
    # genkit 0.12 escapes '/' in path segments and writes flows as actions of subtype flow
    # (JS: '/{ragFlow,t:flow}/{test/ret,t:action,s:retriever}'); genkit's spelling wins.
    assert retrieved['genkit:path'] == '/{test%2Fret,t:action,s:retriever}'
    assert json.loads(retrieved['genkit:input']) == {
        'query': {'content': [{'text': 'fruit'}]},
        'options': {'k': 2},
    }
    assert [d['content'][0]['text'] for d in json.loads(retrieved['genkit:output'])['documents']] == [
        'apple pie',
        'banana split',
    ]
    assert retrieved['genkit:state'] == 'success'

    await ai.index(indexer='test/idx', documents=['a'])
    indexed = attributes(spans, 'test/idx')
    assert indexed['genkit:metadata:subtype'] == 'indexer'
    assert 'genkit:output' not in indexed

    ai.define_simple_retriever('simple/strings', lambda q, c: ['s'])
    await ai.retrieve(retriever='simple/strings', query='q')
    assert json.loads(attributes(spans, 'simple/strings')['genkit:input']) == {
        'query': {'content': [{'text': 'q'}]}
    }

    @ai.flow(name='ragFlow')
    async def rag_flow(question: str) -> str:
        docs = await ai.retrieve(retriever='test/ret', query=question)
        ranked = await ai.rerank(reranker='test/rr', query=question, documents=docs)
        return ranked[0].text

    assert await rag_flow('q') == 'banana split'
    paths = {s.attributes['genkit:path'] for s in spans.get_finished_spans()}
    assert '/{ragFlow,t:action,s:flow}/{test%2Fret,t:action,s:retriever}' in paths
    assert '/{ragFlow,t:action,s:flow}/{test%2Frr,t:action,s:reranker}' in paths


async def test_an_index_trace_records_the_documents_json_the_indexer_can_share(ai, spans):
    from genkit_parity.rag import INDEXER, _IndexRequest, request_documents_json

    shared: list[Any] = []

    async def store(docs: list[Document], options: Any) -> None:
        shared.append((request_documents_json(docs), request_documents_json(list(docs))))

    ai.define_indexer('test/idx', store)
    docs = [Document.from_text('a', {'x': 1.5, 'nested': {'k': [1, None, 'é']}}), Document.from_text('b"\n')]
    for options in (None, {'ns': 'n1', 'deep': {'v': [1, 2]}}):
        await ai.index(indexer='test/idx', documents=docs, options=options)
        recorded = attributes(spans, 'test/idx')['genkit:input']
        # The same text pydantic's own dump of the request gives.
        request = _IndexRequest.model_construct(documents=docs, options=options)
        assert recorded == BaseModel.model_dump_json(request, by_alias=True, exclude_none=True)
        documents_json, for_a_copy = shared[-1]
        assert json.loads(documents_json) == as_json(docs)
        assert json.loads(recorded)['documents'] == json.loads(documents_json)
        # Only the very list the action handed its function gets the shared JSON.
        assert for_a_copy is None
    assert request_documents_json(docs) is None, 'no index call is running'
    # A request from the reflection API or a dict: nothing is shared (the store dumps itself).
    action = await ai.registry.resolve_action(INDEXER, 'test/idx')
    await action.run({'documents': as_json(docs)})
    assert shared[-1] == (None, None)


# -- refs and options ----------------------------------------------------------------------


def test_refs_are_plain_records():
    ref = retriever_ref('a/b', info={'label': 'L'})
    assert (ref.name, ref.info, ref.config_schema) == ('a/b', {'label': 'L'}, None)
    assert indexer_ref('a/b').name == 'a/b'
    assert reranker_ref('r', config_schema=CommonRerankerOptions).config_schema is CommonRerankerOptions
    with pytest.raises(TypeError, match='name must be a non-empty str'):
        retriever_ref('')
    with pytest.raises(TypeError, match='info must be a mapping'):
        retriever_ref('x', info='label')  # type: ignore[arg-type]


def test_common_options_describe_k():
    assert CommonRetrieverOptions.model_json_schema()['properties']['k']['description'] == (
        'Number of documents to retrieve'
    )
    assert (
        CommonRerankerOptions.model_json_schema()['properties']['k']['description']
        == 'Number of documents to rerank'
    )


async def test_toy_embedder_counts_letters():
    ai = Genkit()
    define_toy_embedder(ai)
    embeddings = await ai.embed_many(embedder='toyEmbedder', content=['aaa', 'abc', 'bbc', ''])
    assert [e.embedding for e in embeddings] == [[3, 0, 0], [1, 1, 1], [0, 2, 1], [0, 0, 0]]
