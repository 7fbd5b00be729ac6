"""genkit-parity's json/array/jsonl formats against genkit 0.12's own, chunk by chunk.

genkit's pure-Python formats are the oracle: every document of the corpus is streamed one
character at a time (so every prefix is read), in random chunk sizes, and read out of order,
and each chunk's output (value or exception) must equal genkit's.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from genkit._ai._formats import ArrayFormat, JsonFormat, JsonlFormat
from genkit._core._extract_json import extract_json as genkit_extract_json
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from genkit_parity.formats import FastArrayFormat, FastJsonFormat, FastJsonlFormat, extract_json

from ._formats import chunk_outcomes, chunk_texts, message_outcome, outcome, random_sizes

NESTED = {
    'title': 'Ünïcödé ✓ 日本語 🎉',
    'count': -12,
    'ratio': 0.125,
    'big': 123456789012345678901234567890,
    'exp': 1.5e-7,
    'flags': [True, False, None],
    'deep': {'a': {'b': {'c': [1, [2, [3, {'d': 'end'}]]]}}},
    'escapes': 'quote " backslash \\ slash / tab \t newline \n',
    'braces': 'text with } and ] and { inside',
    'empty': {'o': {}, 'a': [], 's': ''},
}

JSON_CORPUS = [
    json.dumps(NESTED),
    json.dumps(NESTED, indent=2),
    json.dumps(NESTED, ensure_ascii=False, indent=4),
    '```json\n' + json.dumps(NESTED, indent=2) + '\n```',
    'Here is the JSON you asked for:\n\n```json\n' + json.dumps(NESTED) + '\n```\nAnything else?',
    'Sure! {"answer": 42, "items": [1, 2, 3]} hope that helps {"second": true}',
    '[{"n": 1}, {"n": 2.50}, {"n": -0}, {"n": -0.0}, {"n": 1E5}, {"n": 1e400}, {"n": 0.1e-2}]',
    '[[[[[[[[[[1]]]]]]]]], [[[[{"x": [[]]}]]]]]',
    '{"emoji": "\\ud83d\\ude00 and \\u00e9 and \\u2028", "lone": "\\ud83d x", "low": "\\ude00"}',
    '{"s": "\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041"}',
    '{"a": "unterminated string that never ends',
    '{"a": [1, 2, {"b": tru',
    '{"num": -12.5e+3',
    'He said "look at {this}" then: {"real": 1}',
    'a \\"quoted\\" word then {"k": "v"}',
    '   \n\t  {"padded": true}   \n  ',
    # json5 and other non-strict forms genkit reads through json5
    "{'single': 'quotes', \"mixed\": 1}",
    '{"trailing": [1, 2, 3,], "comma": true,}',
    '{unquoted: 1, "hex": 0x1F, "inf": Infinity, "nan": NaN, "plus": +1, "dot": .5}',
    '// a comment\n{"after": "comment"}',
    '{"a": 1 /* inline */, "b": 2}',
    '{"a": 1}garbage{',
    # scalars and texts without JSON
    '42',
    '-3.5',
    '"just a string"',
    'true',
    'null and more',
    'the answer is below',
    'Nothing here at all',
    '',
    '   ',
    '{"unbalanced": "quote in key}',
    "{'broken': '}'",
    '[1, 2, 3]',
    '{"a": 01}',
    '{"a": "raw\ncontrol"}',
]

ARRAY_CORPUS = [
    json.dumps([{'n': i, 's': 'x' * i, 'nested': {'k': [i, {'deep': i}]}} for i in range(6)], indent=2),
    '```json\n[{"a": 1}, {"b": "}"}, {"c": "\\"{"}]\n```',
    'Some text first [ {"a": 1} , {"b": 2} ] and {"after": 3}',
    '[{"a": 1}, 2, "three", {"b": [{"inner": 1}]}, [{"nested": 1}]]',
    '[{"a": 1,}, {"b": 2}]',
    '[{\'single\': 1}, {"double": 2}]',
    '[{"bad": }, {"good": 1}]',
    '{"a": 1} then [{"b": 2}]',
    '}} ] [{"a": 1}]',
    '["a", "b"]',
    'no array here',
    '[]',
    '[{"emoji": "\\ud83d\\ude00"}]',
]

JSONL_CORPUS = [
    '\n'.join(json.dumps({'n': i, 'text': f'line {i} ✓'}) for i in range(8)),
    '```jsonl\n{"a": 1}\n{"b": 2}\n```',
    '{"a": 1}\n\n  {"b": 2}  \nnot json\n{"c": 3}\n',
    '{"a": 1}\n{}\n{"b": 2}',
    '{\'single\': 1}\n{"trailing": [1,],}\n{bad}\n{"after": 1}',
    '{"a": 1} trailing text\n{"b": 2}',
    '{"emoji": "\\ud83d\\ude00"}\n{"x": 1}',
]

FORMATS = [
    pytest.param(JsonFormat(), FastJsonFormat(), JSON_CORPUS, id='json'),
    pytest.param(ArrayFormat(), FastArrayFormat(), ARRAY_CORPUS, id='array'),
    pytest.param(JsonlFormat(), FastJsonlFormat(), JSONL_CORPUS, id='jsonl'),
]


@pytest.mark.parametrize(('genkit_format', 'fast_format', 'corpus'), FORMATS)
def test_every_prefix_matches_genkit(genkit_format: object, fast_format: object, corpus: list[str]) -> None:
    for doc in corpus:
        pieces = list(doc) or ['']
        assert chunk_outcomes(fast_format, pieces) == chunk_outcomes(genkit_format, pieces), doc


@pytest.mark.parametrize(('genkit_format', 'fast_format', 'corpus'), FORMATS)
def test_random_chunk_sizes_match_genkit(
    genkit_format: object, fast_format: object, corpus: list[str]
) -> None:
    for seed in range(5):
        for doc in corpus:
            pieces = chunk_texts(doc, random_sizes(seed, 1, 7 + 9 * seed))
            assert chunk_outcomes(fast_format, pieces) == chunk_outcomes(genkit_format, pieces), (seed, doc)


@pytest.mark.parametrize(('genkit_format', 'fast_format', 'corpus'), FORMATS)
def test_out_of_order_and_skipped_reads_match_genkit(
    genkit_format: object, fast_format: object, corpus: list[str]
) -> None:
    for doc in corpus:
        pieces = chunk_texts(doc, random_sizes(7, 1, 12)) or ['']
        n = len(pieces)
        orders = [list(reversed(range(n))), list(range(0, n, 3)), [i for i in range(n) if i % 2] + [0]]
        for order in orders:
            fast = chunk_outcomes(fast_format, pieces, order)
            assert fast == chunk_outcomes(genkit_format, pieces, order), (order, doc)


@pytest.mark.parametrize(('genkit_format', 'fast_format', 'corpus'), FORMATS)
def test_final_message_matches_genkit(genkit_format: object, fast_format: object, corpus: list[str]) -> None:
    for doc in corpus:
        for text in (doc, doc[: len(doc) // 2]):
            assert message_outcome(fast_format, text) == message_outcome(genkit_format, text), text


def test_extract_json_matches_genkit_at_every_prefix() -> None:
    for doc in JSON_CORPUS:
        for end in range(len(doc) + 1):
            for throw in (True, False):
                ours = outcome(extract_json, doc[:end], throw)
                assert ours == outcome(genkit_extract_json, doc[:end], throw), (doc[:end], throw)


def test_extract_json_rejects_non_text() -> None:
    with pytest.raises(TypeError, match='text must be a str'):
        extract_json(b'{}')  # type: ignore[arg-type]


# --- property tests: arbitrary text and arbitrary documents -------------------------------

JSONISH = st.lists(
    st.sampled_from([*'{}[]",:\\ \n\t0123456789.eE+-tfnrulaxs\'/*`', 'é', '🎉', '\\u00', 'true', '\\ud83d']),
    max_size=50,
).map(''.join)


@settings(max_examples=300, deadline=None)
@given(text=JSONISH, sizes=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=30))
def test_arbitrary_text_matches_genkit_for_every_format(text: str, sizes: list[int]) -> None:
    pieces = chunk_texts(text, sizes) or ['']
    for genkit_format, fast_format in (
        (JsonFormat(), FastJsonFormat()),
        (ArrayFormat(), FastArrayFormat()),
        (JsonlFormat(), FastJsonlFormat()),
    ):
        assert chunk_outcomes(fast_format, pieces) == chunk_outcomes(genkit_format, pieces)
        assert message_outcome(fast_format, text) == message_outcome(genkit_format, text)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(
    doc=st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=6) | st.lists(JSON_VALUES, max_size=6),
    indent=st.sampled_from([None, 2]),
    ascii_only=st.booleans(),
    sizes=st.lists(st.integers(min_value=1, max_value=25), min_size=1, max_size=40),
)
def test_complete_documents_read_like_json_and_every_chunk_matches_genkit(
    doc: object, indent: int | None, ascii_only: bool, sizes: list[int]
) -> None:
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only)
    assert outcome(extract_json, text) == outcome(genkit_extract_json, text)
    if not ascii_only:  # (genkit's json5 keeps escaped surrogate pairs apart)
        assert extract_json(text) == json.loads(text)
    pieces = chunk_texts(text, sizes)
    assert chunk_outcomes(FastJsonFormat(), pieces) == chunk_outcomes(JsonFormat(), pieces)


# --- partial models: genkit-parity builds chunk.output models itself ------------------------


class Leaf(BaseModel):
    n: int
    label: str | None = None


class Tree(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(alias='title')
    other: Annotated[int, Field(validation_alias=AliasChoices('other', 'alt'))] = 0
    leaves: list[Leaf]
    pair: tuple[Leaf, int] | None = None
    mapping: dict[str, Leaf] = {}
    either: Leaf | Tree | None = None
    children: list[Tree] = []
    forward: list[Leaf] = []
    raw: dict[str, Any] = {}


TREE = {
    'title': 'root',
    'alt': 3,
    'leaves': [{'n': 1}, {'n': 2, 'label': 'two'}],
    'pair': [{'n': 9}, 4],
    'mapping': {'a': {'n': 5}},
    'either': {'name': 'sub', 'leaves': []},
    'children': [{'title': 'child', 'leaves': [{'n': 7}], 'children': []}],
    'forward': [{'n': 8}],
    'raw': {'x': {'n': 1}},
}


def test_partial_models_match_genkit_at_every_prefix() -> None:
    from genkit._core._partial import construct_partial as genkit_construct_partial

    from genkit_parity._partial_model import construct_partial

    text = json.dumps(TREE)
    for end in range(1, len(text) + 1):
        partial = genkit_extract_json(text[:end], throw_on_bad_json=False)
        if not isinstance(partial, dict):
            continue
        ours = construct_partial(Tree, partial)
        theirs = genkit_construct_partial(schema_type=Tree, data=partial)
        assert repr(ours) == repr(theirs), text[:end]


def test_integers_longer_than_python_converts_match_genkit() -> None:
    # Python refuses int() of more than 4,300 digits; genkit's paths differ, so genkit decides.
    for doc in ('{"n": ' + '9' * 4_500 + '}', '[1, ' + '7' * 4_400):
        pieces = chunk_texts(doc, [97] * 100)
        assert chunk_outcomes(FastJsonFormat(), pieces) == chunk_outcomes(JsonFormat(), pieces)
        assert message_outcome(FastJsonFormat(), doc) == message_outcome(JsonFormat(), doc)
