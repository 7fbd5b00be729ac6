"""The local vector store against JS dev-local-vectorstore's observed behaviour (spec rag.md §2.1)."""

from __future__ import annotations

import json
import math
import random
import struct
import threading
from pathlib import Path
from typing import Any

import genkit
import pytest
from genkit import Document

from genkit_parity import Genkit
from genkit_parity.errors import (
    CorruptVectorStoreError,
    InvalidVectorError,
    VectorIndexNotFoundError,
)
from genkit_parity.testing import define_toy_embedder
from genkit_parity.vectorstore import (
    DevLocalVectorStore,
    LocalVectorIndex,
    define_dev_local_vector_store,
    dev_local_indexer_ref,
    dev_local_retriever_ref,
    export_js_index,
    import_js_index,
)

from ._reflection import get, serve_reflection

SPEC_IDS = [
    '44215990ebe501ee3dee68fac034f131',
    '615810d9e26e082236497e14a564bc47',
    '1c32efdb61e7f5823f27a4babf472886',
    'e6ccbb45343f2864c8b7e1b8a4913dd0',
    '5b594685f0143abe515c561f40e68587',
]


def toy_docs() -> list[Document]:
    return [
        Document.from_text('aaa', {'src': 1}),
        Document.from_text('bbb'),
        Document.from_text('abc'),
        Document.from_text('ccc'),
        Document.from_text('aab'),
    ]


def dumped(docs: list[Document]) -> list[dict[str, Any]]:
    return [d.model_dump(by_alias=True, exclude_none=True) for d in docs]


class CountingEmbedder:
    """The toy embedder, counting calls and documents per call."""

    def __init__(self, ai: Any, name: str = 'countingEmbedder') -> None:
        self.calls: list[int] = []
        self.options: list[Any] = []

        async def embed(request: Any) -> Any:
            self.calls.append(len(request.input))
            self.options.append(request.options)
            texts = [Document.model_validate(d.model_dump()).text for d in request.input]
            return genkit.embedder.EmbedResponse(
                embeddings=[genkit.Embedding(embedding=[float(t.count(c)) for c in 'abc']) for t in texts]
            )

        ai.define_embedder(name, embed)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / 'vectors'


@pytest.fixture
def toy(store_dir: Path) -> Genkit:
    ai = Genkit()
    define_toy_embedder(ai)
    define_dev_local_vector_store(ai, name='facts', embedder='toyEmbedder', directory=store_dir)
    return ai


async def test_spec_ids_dedup_and_retrieval_order(toy: Genkit, store_dir: Path, tmp_path: Path) -> None:
    indexer, retriever = dev_local_indexer_ref('facts'), dev_local_retriever_ref('facts')
    await toy.index(indexer=indexer, documents=toy_docs())
    out = tmp_path / '__db_facts.json'
    export_js_index(out, name='facts', directory=store_dir)
    assert list(json.loads(out.read_text())) == SPEC_IDS

    # Re-indexing the same document adds nothing (first write wins); a new one is added.
    await toy.index(
        indexer=indexer,
        documents=[Document.from_text('aaa', {'src': 1}), Document.from_text('aaa', {'src': 2})],
    )
    docs = await toy.retrieve(retriever=retriever, query='a')
    assert dumped(docs) == [
        {'content': [{'text': 'aaa'}], 'metadata': {'src': 1}},
        {'content': [{'text': 'aaa'}], 'metadata': {'src': 2}},
        {'content': [{'text': 'aab'}]},
    ]
    docs = await toy.retrieve(retriever=retriever, query='bc', options={'k': 2})
    assert dumped(docs) == [{'content': [{'text': 'abc'}]}, {'content': [{'text': 'bbb'}]}], (
        'bbb ties ccc, indexed first'
    )
    assert len(await toy.retrieve(retriever=retriever, query='a', options={'k': 100})) == 6
    # 0.5.1's spelling of k.
    assert len(await toy.retrieve(retriever=retriever, query='a', options={'limit': 1})) == 1
    # The first entry as JS writes it (indent 2, JS number text).
    text = out.read_text()
    export_js_index(out, name='facts', directory=store_dir)
    entry = json.loads(out.read_text())[SPEC_IDS[0]]
    assert entry == {
        'doc': {'content': [{'text': 'aaa'}], 'metadata': {'src': 1}},
        'embedding': {'embedding': [3, 0, 0]},
    }
    assert text.startswith('{\n  "44215990ebe501ee3dee68fac034f131": {\n    "doc": {\n      "content": [\n')
    assert '"embedding": [\n        3,\n        0,\n        0\n      ]' in text


async def test_python_float_metadata_hashes_like_js(toy: Genkit, store_dir: Path) -> None:
    await toy.index(indexer='devLocalVectorstore/facts', documents=[Document.from_text('aaa', {'src': 1.0})])
    await toy.index(indexer='devLocalVectorstore/facts', documents=[Document.from_text('aaa', {'src': 1})])
    assert len(LocalVectorIndex(store_dir, 'facts')) == 1


async def test_every_embedding_of_a_document_is_a_row(store_dir: Path, tmp_path: Path) -> None:
    ai = Genkit()

    async def two_parts(request: Any) -> Any:
        return genkit.embedder.EmbedResponse(
            embeddings=[
                genkit.Embedding(embedding=[1.0, 1.0, 0.0], metadata={'part': 0}),
                genkit.Embedding(embedding=[0.0, 1.0, 1.0], metadata={'part': 1}),
            ]
        )

    ai.define_embedder('twoParts', two_parts)
    define_dev_local_vector_store(ai, name='parts', embedder='twoParts', directory=store_dir)
    await ai.index(indexer=dev_local_indexer_ref('parts'), documents=[Document.from_text('ab')])
    out = tmp_path / 'parts.json'
    assert export_js_index(out, name='parts', directory=store_dir) == 2
    assert json.loads(out.read_text()) == {
        '7f9d6c477d0e99f3190e3f6743ff066a': {
            'doc': {'content': [{'text': 'ab'}], 'metadata': {'embedMetadata': {'part': 0}}},
            'embedding': {'embedding': [1, 1, 0], 'metadata': {'part': 0}},
        },
        'd04136bed9e45f77bb36b4692471d2e4': {
            'doc': {'content': [{'text': 'ab'}], 'metadata': {'embedMetadata': {'part': 1}}},
            'embedding': {'embedding': [0, 1, 1], 'metadata': {'part': 1}},
        },
    }
    docs = await ai.retrieve(
        retriever=dev_local_retriever_ref('parts'), query=Document.from_text('x'), options={'k': 1}
    )
    assert docs[0].metadata == {'embedMetadata': {'part': 0}}


async def test_one_embedder_call_per_index_call(store_dir: Path) -> None:
    ai = Genkit()
    counting = CountingEmbedder(ai)
    define_dev_local_vector_store(
        ai, name='count', embedder='countingEmbedder', embedder_options={'foo': 1}, directory=store_dir
    )
    await ai.index(
        indexer=dev_local_indexer_ref('count'), documents=[Document.from_text('a' * i) for i in range(1, 11)]
    )
    assert counting.calls == [10]
    assert counting.options == [{'foo': 1}]
    assert len(LocalVectorIndex(store_dir, 'count')) == 10


async def test_include_score_and_where(toy: Genkit) -> None:
    retriever = dev_local_retriever_ref('facts')
    await toy.index(
        indexer=dev_local_indexer_ref('facts'),
        documents=[*toy_docs(), Document.from_text('aaa', {'src': 2, 'lang': 'en'})],
    )
    docs = await toy.retrieve(retriever=retriever, query='ab', options={'k': 2, 'include_score': True})
    scores = [d.metadata['score'] for d in docs]  # type: ignore[index]
    # cos([1,1,0], aab=[2,1,0]) = 3 / (sqrt 2 sqrt 5) ; abc = 2 / (sqrt 2 sqrt 3)
    assert scores == pytest.approx([3 / (2**0.5 * 5**0.5), 2 / (2**0.5 * 3**0.5)], rel=1e-6)
    assert docs[0].text == 'aab'
    docs = await toy.retrieve(retriever=retriever, query='a', options={'where': {'src': 2.0}})
    assert dumped(docs) == [{'content': [{'text': 'aaa'}], 'metadata': {'src': 2, 'lang': 'en'}}]
    docs = await toy.retrieve(retriever=retriever, query='a', options={'where': {'src': 2, 'lang': 'fr'}})
    assert docs == []
    # Without include_score no score is added (as JS).
    docs = await toy.retrieve(retriever=retriever, query='a', options={'k': 1})
    assert docs[0].metadata == {'src': 1}


async def test_retrieve_from_an_empty_store(toy: Genkit) -> None:
    assert await toy.retrieve(retriever=dev_local_retriever_ref('facts'), query='a') == []


async def test_bad_input_is_typed_and_loses_nothing(store_dir: Path) -> None:
    ai = Genkit()

    async def by_text(request: Any) -> Any:
        vectors = {'zero': [0.0, 0.0, 0.0], 'nan': [float('nan'), 1.0, 0.0], 'short': [1.0, 0.0], 'empty': []}
        return genkit.embedder.EmbedResponse(
            embeddings=[
                genkit.Embedding(
                    embedding=vectors.get(Document.model_validate(d.model_dump()).text, [1.0, 2.0, 3.0])
                )
                for d in request.input
            ]
        )

    ai.define_embedder('byText', by_text)
    define_dev_local_vector_store(ai, name='bad', embedder='byText', directory=store_dir)
    indexer, retriever = dev_local_indexer_ref('bad'), dev_local_retriever_ref('bad')
    await ai.index(indexer=indexer, documents=[Document.from_text('ok')])
    for text, needle in [
        ('zero', 'zero vector'),
        ('nan', 'non-finite'),
        ('short', 'dimensions'),
        ('empty', 'empty'),
    ]:
        with pytest.raises(InvalidVectorError) as raised:
            await ai.index(indexer=indexer, documents=[Document.from_text('fine'), Document.from_text(text)])
        assert needle in str(raised.value)
        assert raised.value.status == 'INVALID_ARGUMENT'
        assert raised.value.index_name == 'bad'
        assert "'bad'" in str(raised.value) or '"bad"' in str(raised.value)
        with pytest.raises(InvalidVectorError):
            await ai.retrieve(retriever=retriever, query=text)
    assert len(LocalVectorIndex(store_dir, 'bad')) == 1, 'a failed call stores nothing, loses nothing'
    for options, needle in [
        ({'k': -1}, 'k'),
        ({'k': float('inf')}, 'k must be a non-negative integer'),
        ({'k': float('nan')}, 'k must be a non-negative integer'),
        ({'k': 2.5}, 'k must be a non-negative integer'),
        ({'where': [1]}, 'where'),
        ({'where': {'x': float('nan')}}, 'where must hold JSON values only'),
    ]:
        with pytest.raises(genkit.GenkitError, match=needle):
            await ai.retrieve(retriever=retriever, query='ok', options=options)
    # A k past any index's size is every row, not an overflow.
    assert len(await ai.retrieve(retriever=retriever, query='ok', options={'k': 1e30})) == 1


def test_the_native_index_names_a_bad_k(tmp_path: Path) -> None:
    numpy = pytest.importorskip('numpy')
    core = LocalVectorIndex(tmp_path, 'k')
    docs = [json.dumps({'content': [{'text': t}]}) for t in ('a', 'b')]
    core.add(docs, [[1.0, 0.0], [0.0, 1.0]])
    for bad in (-1, -(2**70)):
        with pytest.raises(ValueError, match=f'k must be at least 0, not {bad}'):
            core.search([1.0, 0.0], bad)
        with pytest.raises(ValueError, match='k must be at least 0'):
            core.search_many([[1.0, 0.0]], bad)
    for bad in (2.5, True, '2', None):
        with pytest.raises(TypeError, match=f'k must be an int, not {type(bad).__name__}'):
            core.search([1.0, 0.0], bad)  # type: ignore[arg-type]
    assert [json.loads(d)['content'][0]['text'] for d, _ in core.search([1.0, 0.0], numpy.int64(1))] == ['a']
    assert len(core.search([1.0, 0.0], 2**70)) == 2
    assert core.search([1.0, 0.0], 0) == []


def test_hostile_names_and_missing_indexes(tmp_path: Path) -> None:
    for name in ['', '../x', 'a/b', 'a\\b', '.hidden', 'x\x00y']:
        with pytest.raises(InvalidVectorError):
            LocalVectorIndex(tmp_path, name)
    with pytest.raises(VectorIndexNotFoundError) as raised:
        LocalVectorIndex(tmp_path, 'missing', must_exist=True)
    assert raised.value.status == 'NOT_FOUND'
    with pytest.raises(VectorIndexNotFoundError):
        export_js_index(tmp_path / 'x.json', name='missing', directory=tmp_path)
    assert not any(tmp_path.iterdir()), 'opening creates nothing'


def test_corrupt_file_is_data_loss_naming_the_file(tmp_path: Path) -> None:
    core = LocalVectorIndex(tmp_path, 'c')
    core.add(['{"content":[{"text":"a"}]}'], [[1.0, 0.0]])
    core.add(['{"content":[{"text":"b"}]}'], [[0.0, 1.0]])
    data = bytearray(core.path.read_bytes())
    data[-5] ^= 0xFF  # inside the last complete record
    core.path.write_bytes(bytes(data))
    with pytest.raises(CorruptVectorStoreError) as raised:
        LocalVectorIndex(tmp_path, 'c')
    assert raised.value.status == 'DATA_LOSS'
    assert 'c.gkvec' in str(raised.value)
    # Garbage appended after good records is corruption too, never skipped.
    core2 = LocalVectorIndex(tmp_path, 'd')
    core2.add(['{"content":[{"text":"a"}]}'], [[1.0, 0.0]])
    with core2.path.open('ab') as f:
        f.write(b'{"not": "a record"}\n')
    with pytest.raises(CorruptVectorStoreError):
        LocalVectorIndex(tmp_path, 'd')


def test_js_file_round_trip_and_spec_sample(tmp_path: Path) -> None:
    sample = {
        SPEC_IDS[0]: {
            'doc': {'content': [{'text': 'aaa'}], 'metadata': {'src': 1}},
            'embedding': {'embedding': [3, 0, 0]},
        },
        SPEC_IDS[1]: {'doc': {'content': [{'text': 'bbb'}]}, 'embedding': {'embedding': [0, 3, 0]}},
        '7f9d6c477d0e99f3190e3f6743ff066a': {
            'doc': {'content': [{'text': 'ab'}], 'metadata': {'embedMetadata': {'part': 0}}},
            'embedding': {'embedding': [1, 1, 0.5], 'metadata': {'part': 0}},
        },
    }
    js_text = json.dumps(sample, indent=2, ensure_ascii=False)  # JS's layout for these values
    source = tmp_path / '__db_facts.json'
    source.write_text(js_text)
    assert import_js_index(source, name='facts', directory=tmp_path / 'v') == 3
    assert import_js_index(source, name='facts', directory=tmp_path / 'v') == 0
    out = tmp_path / 'out.json'
    assert export_js_index(out, name='facts', directory=tmp_path / 'v') == 3
    assert out.read_text() == js_text
    core = LocalVectorIndex(tmp_path / 'v', 'facts')
    hits = core.search([1.0, 0.0, 0.0], 1)
    assert json.loads(hits[0][0]) == {'content': [{'text': 'aaa'}], 'metadata': {'src': 1}}


def test_search_many_and_bytes_vectors(tmp_path: Path) -> None:
    import struct

    core = LocalVectorIndex(tmp_path, 'm')
    docs = [json.dumps({'content': [{'text': str(i)}]}) for i in range(4)]
    vectors = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]
    flat = struct.pack('<8f', *[x for v in vectors for x in v])
    assert core.add(docs, flat) == 4
    assert core.dimensions() == 2
    many = core.search_many([[1.0, 0.0], [0.0, 1.0]], 2)
    assert [[json.loads(d)['content'][0]['text'] for d, _ in hits] for hits in many] == [
        ['0', '2'],
        ['1', '2'],
    ]
    assert json.loads(
        core.search_many(struct.pack('<4f', 1.0, 0.0, 0.0, 1.0), 1, dims=2)[1][0][0]
    ) == json.loads(docs[1])
    assert json.loads(core.search(struct.pack('<2f', -1.0, 0.0), 1)[0][0]) == json.loads(docs[3])
    with pytest.raises(InvalidVectorError):
        core.add(docs[:1], b'\x00\x00\x80')


def test_rows_of_any_real_numbers_and_a_row_changed_while_it_is_read(tmp_path: Path) -> None:
    from decimal import Decimal

    class Float(float):
        pass

    core = LocalVectorIndex(tmp_path, 'mixed')
    docs = [json.dumps({'content': [{'text': str(i)}]}) for i in range(3)]
    # Exact floats are read directly; ints, bools, float subclasses and Decimals convert.
    assert core.add(docs, [[1, 0.0], [Float(0.5), Decimal('2')], [True, 3.0]]) == 3
    hits = core.search([1.0, 0.0], 3)
    assert [json.loads(d)['content'][0]['text'] for d, _ in hits] == ['0', '2', '1']
    assert [round(score, 6) for _, score in hits] == [1.0, round(1 / 10**0.5, 6), round(0.5 / 4.25**0.5, 6)]

    class Clearing:
        """A number whose conversion empties the row being read."""

        def __init__(self, row: list[Any]) -> None:
            self.row = row

        def __float__(self) -> float:
            self.row.clear()
            return 1.0

    row: list[Any] = [1.0, 2.0, 3.0]
    row[1] = Clearing(row)
    with pytest.raises(TypeError, match='index out of range'):
        core.add([json.dumps({'content': [{'text': 'x'}]})], [row])
    assert len(core) == 3, 'nothing of the failed add is stored'


def test_approximate_recall_on_low_rank_data(tmp_path: Path) -> None:
    rng = random.Random(3)
    n, dims, rank = 6000, 48, 12
    basis = [[rng.gauss(0, 1) for _ in range(dims)] for _ in range(rank)]

    def sample() -> list[float]:
        mix = [rng.gauss(0, 1) for _ in range(rank)]
        return [
            sum(m * b[j] for m, b in zip(mix, basis, strict=True)) + rng.gauss(0, 0.1) for j in range(dims)
        ]

    rows = [sample() for _ in range(n)]
    core = LocalVectorIndex(tmp_path, 'ann')
    core.add([json.dumps({'content': [{'text': str(i)}]}) for i in range(n)], rows)
    found = 0
    queries = [sample() for _ in range(30)]
    for q in queries:
        exact = {d for d, _ in core.search(q, 10)}
        approx = core.search(q, 10, approximate=True)
        found += len(exact & {d for d, _ in approx})
        # Scores of the approximate path are exact cosines of the rows it returns.
        assert [s for _, s in approx] == sorted((s for _, s in approx), reverse=True)
    assert found / (10 * len(queries)) >= 0.95


def test_approximate_search_sees_rows_added_after_its_codes_were_built(tmp_path: Path) -> None:
    rng = random.Random(11)
    dims = 32
    core = LocalVectorIndex(tmp_path, 'grow')
    core.add(
        [json.dumps({'content': [{'text': f'old {i}'}]}) for i in range(3000)],
        [[rng.gauss(0, 1) for _ in range(dims)] for _ in range(3000)],
    )
    probe = [rng.gauss(0, 1) for _ in range(dims)]
    assert core.search(probe, 3, approximate=True)  # builds the codes over 3,000 rows
    target = [rng.gauss(0, 1) for _ in range(dims)]
    core.add([json.dumps({'content': [{'text': 'new'}]})], [target])
    [(doc, score)] = core.search(target, 1, approximate=True)
    assert json.loads(doc) == {'content': [{'text': 'new'}]}
    assert score == pytest.approx(1.0, abs=1e-6)


REFLECTION_APP = """
from genkit_parity import Genkit
from genkit_parity.testing import define_toy_embedder
from genkit_parity.vectorstore import define_dev_local_vector_store

ai = Genkit()
define_toy_embedder(ai)
define_dev_local_vector_store(ai, name='facts', embedder='toyEmbedder', directory='vectors')
"""


def test_registered_metadata_matches_js(tmp_path: Path) -> None:
    with serve_reflection(REFLECTION_APP, tmp_path) as url:
        actions = get(f'{url}/api/actions')
    assert actions['/retriever/devLocalVectorstore/facts']['metadata'] == {
        'type': 'retriever',
        'retriever': {
            'customOptions': {
                'type': 'object',
                'properties': {'k': {'type': 'number', 'description': 'Number of documents to retrieve'}},
                'additionalProperties': True,
                '$schema': 'http://json-schema.org/draft-07/schema#',
            }
        },
    }
    assert actions['/indexer/devLocalVectorstore/facts']['metadata'] == {'type': 'indexer', 'indexer': {}}


def test_approximate_with_where_or_on_a_small_store_is_exact(tmp_path: Path) -> None:
    core = LocalVectorIndex(tmp_path, 'small')
    docs = [json.dumps({'content': [{'text': str(i)}], 'metadata': {'even': i % 2 == 0}}) for i in range(50)]
    rng = random.Random(5)
    core.add(docs, [[rng.gauss(0, 1) for _ in range(8)] for _ in docs])
    q = [rng.gauss(0, 1) for _ in range(8)]
    assert core.search(q, 5, approximate=True) == core.search(q, 5)
    where = json.dumps({'even': True})
    hits = core.search(q, 50, where_json=where, approximate=True)
    assert hits == core.search(q, 50, where_json=where)
    assert len(hits) == 25
    assert all(json.loads(d)['metadata']['even'] for d, _ in hits)


async def test_documents_stored_alike_whichever_way_their_json_crosses(
    store_dir: Path, tmp_path: Path
) -> None:
    ai = Genkit()
    define_toy_embedder(ai)
    define_dev_local_vector_store(ai, name='traced', embedder='toyEmbedder', directory=store_dir)
    docs = [
        Document.from_text('aaa', {'n': 1.0, 'u': 'é"\n', 'l': [1, {'z': None}]}),
        Document.from_text('abc'),
    ]
    # Through ai.index (the trace's JSON of the request), directly (the store's own dump)
    # and one document at a time (the core's per-document entry point).
    await ai.index(indexer='devLocalVectorstore/traced', documents=docs)
    await DevLocalVectorStore(ai, name='direct', embedder='toyEmbedder', directory=store_dir).index(docs)
    LocalVectorIndex(store_dir, 'single').add(
        [d.model_dump_json(by_alias=True, exclude_none=True) for d in docs],
        [[3.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
    )
    exported = []
    for name in ('traced', 'direct', 'single'):
        export_js_index(tmp_path / f'{name}.json', name=name, directory=store_dir)
        exported.append(json.loads((tmp_path / f'{name}.json').read_text()))
    assert exported[0] == exported[1] == exported[2]
    assert [entry['doc'] for entry in exported[0].values()] == [
        {'content': [{'text': 'aaa'}], 'metadata': {'n': 1, 'u': 'é"\n', 'l': [1, {'z': None}]}},
        {'content': [{'text': 'abc'}]},
    ]


async def test_a_value_only_genkits_encoder_handles_is_stored_as_genkit_dumps_it(store_dir: Path) -> None:
    class Odd:
        def __str__(self) -> str:
            return 'odd value'

    ai = Genkit()
    define_toy_embedder(ai)
    store = DevLocalVectorStore(ai, name='odd', embedder='toyEmbedder', directory=store_dir)
    assert await store.index([Document.from_text('aaa', {'o': Odd()})]) == 1
    docs = await store.retrieve('a')
    assert dumped(docs) == [{'content': [{'text': 'aaa'}], 'metadata': {'o': 'odd value'}}]


async def test_an_add_whose_vectors_fail_midway_stores_nothing(tmp_path: Path) -> None:
    """`start_add_array` writes rows while it still reads the vectors: a value that fails
    after the first rows were written leaves the index and its file as they were, and a
    value whose conversion runs Python code (which may use the index) cannot deadlock it."""
    from genkit_parity import _runtime

    core = LocalVectorIndex(tmp_path, 'midway')
    assert core.add([json.dumps({'content': [{'text': 'kept'}]})], [[1.0] * 64]) == 1
    size = core.path.stat().st_size
    docs = json.dumps([{'content': [{'text': f'doc {i}'}]} for i in range(1000)])

    def rows() -> list[list[Any]]:
        # Directions 0.01 radians apart: each row is its own nearest.
        return [[math.cos(i / 100), math.sin(i / 100)] + [0.0] * 62 for i in range(1000)]

    class Failing:
        def __float__(self) -> float:
            raise ValueError('this value is no number')

    class UsingTheIndex:
        """A value whose conversion uses the index, here and from another thread (which
        waits for the index's locks: the add must not hold them while Python code runs)."""

        def __float__(self) -> float:
            seen: list[int] = []
            other = threading.Thread(target=lambda: seen.append(len(LocalVectorIndex(tmp_path, 'midway'))))
            other.start()
            other.join()
            return float(len(core) + seen[0])

    def add(vectors: Any) -> Any:
        return _runtime.call(lambda ticket: core.start_add_array(ticket, docs, vectors))

    bad = rows()
    bad[700][5] = Failing()
    # As `add` raises it: the general conversion's error, naming the value's own. The
    # failed add stores nothing.
    with pytest.raises(TypeError, match='this value is no number'):
        await add(bad)
    # The failed add stored nothing; an add whose conversion runs Python code goes on
    # without holding the locks meanwhile, and stores everything.
    reentrant = rows()
    reentrant[700][5] = UsingTheIndex()
    assert await add(reentrant) == 1000
    assert len(core) == 1001
    assert await add(rows()) == 0, 'the same documents again: first write wins'
    assert core.path.stat().st_size > size
    reloaded = LocalVectorIndex(tmp_path, 'midway')
    assert len(reloaded) == 1001
    for i in (0, 699, 999):
        hit, _ = reloaded.search(rows()[i], 1)[0]
        assert json.loads(hit) == {'content': [{'text': f'doc {i}'}]}
    # The value the conversion gave (the index held 1 row, seen twice) is what was stored.
    row_700 = [float(x) if not isinstance(x, UsingTheIndex) else 2.0 for x in reentrant[700]]
    hit, score = reloaded.search(row_700, 1)[0]
    assert json.loads(hit) == {'content': [{'text': 'doc 700'}]}
    assert score == pytest.approx(1.0)
    # Flat values and bytes take the general conversion, as before.
    other = LocalVectorIndex(tmp_path, 'general')
    flat = json.dumps([{'content': [{'text': f'flat {i}'}]} for i in range(3)])
    assert await _runtime.call(lambda t: other.start_add_array(t, flat, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])) == 3
    packed = struct.pack('<6f', 1.0, 0.0, 0.0, 1.0, 1.0, 1.0)
    again = json.dumps([{'content': [{'text': f'bytes {i}'}]} for i in range(3)])
    assert await _runtime.call(lambda t: other.start_add_array(t, again, packed)) == 3
    assert len(other) == 6


async def test_an_add_over_a_file_cut_short_before_its_header_stores_everything(tmp_path: Path) -> None:
    """A creator killed while writing the file's header leaves a file with nothing
    acknowledged; the next add writes afresh even when it gives up its first attempt (a
    value converted by Python code makes the add let go of the file and add again)."""
    from decimal import Decimal

    from genkit_parity import _runtime

    (tmp_path / 'short.gkvec').write_bytes(b'GKPVE')
    core = LocalVectorIndex(tmp_path, 'short')
    assert len(core) == 0
    rows: list[list[Any]] = [[math.cos(i / 100), math.sin(i / 100), 1.0] for i in range(600)]
    rows[400][2] = Decimal('1.0')
    docs = json.dumps([{'content': [{'text': f'doc {i}'}]} for i in range(600)])
    assert await _runtime.call(lambda ticket: core.start_add_array(ticket, docs, rows)) == 600
    assert len(core) == 600
    assert len(LocalVectorIndex(tmp_path, 'short', must_exist=True)) == 600
