"""Streaming structured output end to end: ai.generate_stream with the fast formats installed."""

from __future__ import annotations

import json
from typing import Any

import genkit
import pytest
from pydantic import BaseModel

from genkit_parity import Genkit, extend
from genkit_parity.formats import FastArrayFormat, FastJsonFormat, FastJsonlFormat, use_fast_formats
from genkit_parity.testing.models import define_programmable_model

from ._formats import chunk_texts, random_sizes


class Item(BaseModel):
    n: int
    label: str


class Catalog(BaseModel):
    title: str
    items: list[Item]


CATALOG = {'title': 'Ünïcödé catalog 🎉', 'items': [{'n': i, 'label': f'item "{i}"'} for i in range(12)]}


def _scripted(ai: genkit.Genkit, text: str, seed: int = 0) -> None:
    define_programmable_model(
        ai, 'scripted', respond={'text': text, 'chunks': chunk_texts(text, random_sizes(seed))}
    )


async def _stream_outputs(ai: genkit.Genkit, **options: Any) -> tuple[list[Any], Any]:
    stream_response = ai.generate_stream(model='scripted', prompt='go', **options)
    outputs = [chunk.output async for chunk in stream_response.stream]
    return outputs, await stream_response.response


async def _both(text: str, **options: Any) -> tuple[tuple[list[Any], Any], tuple[list[Any], Any]]:
    fast, plain = Genkit(), genkit.Genkit()
    for ai in (fast, plain):
        _scripted(ai, text)
    return await _stream_outputs(fast, **options), await _stream_outputs(plain, **options)


def _dump(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


async def test_json_format_streams_the_same_partial_objects_as_genkit() -> None:
    # (ensure_ascii=False: genkit's json5 keeps escaped surrogate pairs apart, and so do we.)
    text = 'Here you go:\n```json\n' + json.dumps(CATALOG, indent=2, ensure_ascii=False) + '\n```'
    (fast, fast_response), (plain, plain_response) = await _both(text, output_schema=Catalog)
    assert [_dump(o) for o in fast] == [_dump(o) for o in plain]
    assert len(fast) > 10 and isinstance(fast[-1], Catalog)
    # Partial objects grow: the last chunk's output is the whole catalog.
    assert fast[-1].model_dump() == CATALOG
    assert fast_response.output == Catalog.model_validate(CATALOG) == plain_response.output


async def test_array_format_reports_each_item_once_as_genkit_does() -> None:
    text = json.dumps(CATALOG['items'], indent=1)
    schema = {'type': 'array', 'items': Item.model_json_schema()}
    (fast, fast_response), (plain, plain_response) = await _both(
        text, output_format='array', output_schema=schema
    )
    assert fast == plain
    assert [item for chunk in fast for item in chunk] == CATALOG['items']
    assert fast_response.output == plain_response.output == CATALOG['items']


async def test_jsonl_format_streams_objects_per_line_as_genkit_does() -> None:
    text = '\n'.join(json.dumps(item) for item in CATALOG['items'])
    schema = {'type': 'array', 'items': {'type': 'object'}}
    (fast, fast_response), (plain, plain_response) = await _both(
        text, output_format='jsonl', output_schema=schema
    )
    assert fast == plain
    assert fast_response.output == plain_response.output == CATALOG['items']


async def test_chunks_read_later_and_out_of_order_match_genkit() -> None:
    text = json.dumps(CATALOG, ensure_ascii=False)
    results = []
    for ai in (Genkit(), genkit.Genkit()):
        _scripted(ai, text, seed=5)
        stream_response = ai.generate_stream(model='scripted', prompt='go', output_schema=Catalog)
        chunks = [chunk async for chunk in stream_response.stream]
        await stream_response.response
        results.append([_dump(chunks[i].output) for i in reversed(range(len(chunks)))])
    assert results[0] == results[1]
    assert results[0][0] == CATALOG


async def test_formats_are_installed_and_can_be_switched_off() -> None:
    ai = Genkit()
    assert isinstance(ai.registry.lookup_value('format', 'json'), FastJsonFormat)
    assert isinstance(ai.registry.lookup_value('format', 'array'), FastArrayFormat)
    assert isinstance(ai.registry.lookup_value('format', 'jsonl'), FastJsonlFormat)
    use_fast_formats(ai, False)
    assert type(ai.registry.lookup_value('format', 'json')).__name__ == 'JsonFormat'
    assert not isinstance(Genkit(fast_formats=False).registry.lookup_value('format', 'json'), FastJsonFormat)
    plain = genkit.Genkit()
    extend(plain)
    assert isinstance(plain.registry.lookup_value('format', 'json'), FastJsonFormat)
    extend(plain, fast_formats=False)
    assert not isinstance(plain.registry.lookup_value('format', 'json'), FastJsonFormat)


def test_extend_again_changes_only_what_is_passed() -> None:
    ai = extend(genkit.Genkit(), strict_output=True, fast_formats=False)
    extend(ai)
    assert ai.strict_output is True
    assert not isinstance(ai.registry.lookup_value('format', 'json'), FastJsonFormat)
    extend(ai, fast_formats=True)
    assert ai.strict_output is True and isinstance(ai.registry.lookup_value('format', 'json'), FastJsonFormat)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match=r'ai must be a genkit\.Genkit'):
        use_fast_formats(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match='enabled must be a bool'):
        use_fast_formats(Genkit(), 'no')  # type: ignore[arg-type]
    with pytest.raises(TypeError, match='must be bools'):
        Genkit(fast_formats='yes')  # type: ignore[arg-type]


class Inner(BaseModel):
    n: int


class Outer(BaseModel):
    inner: Inner


MISMATCH = '{"inner": {"n": "not a number"}}'


async def test_strict_output_raises_invalid_argument_like_js() -> None:
    ai = Genkit(strict_output=True)
    _scripted(ai, MISMATCH)
    with pytest.raises(genkit.GenkitError) as raised:
        await ai.generate(model='scripted', prompt='x', output_schema=Outer)
    assert raised.value.status == 'INVALID_ARGUMENT'
    assert 'Schema validation failed' in str(raised.value)
    assert "inner/n: 'not a number' is not of type 'integer'" in str(raised.value)
    # Streaming: the chunks still arrive; the final response raises.
    stream_response = ai.generate_stream(model='scripted', prompt='x', output_schema=Outer)
    assert [chunk.text async for chunk in stream_response.stream]
    with pytest.raises(genkit.GenkitError, match='Schema validation failed'):
        await stream_response.response
    # A matching reply is returned as usual; per-call strict_output=False restores genkit's way.
    lenient = await ai.generate(model='scripted', prompt='x', output_schema=Outer, strict_output=False)
    assert lenient.output is None and lenient.error is not None


async def test_default_keeps_genkit_behaviour_and_per_call_strictness() -> None:
    ai = Genkit()
    _scripted(ai, MISMATCH)
    response = await ai.generate(model='scripted', prompt='x', output_schema=Outer)
    assert response.output is None and response.error is not None
    with pytest.raises(genkit.GenkitError, match='Schema validation failed'):
        await ai.generate(model='scripted', prompt='x', output_schema=Outer, strict_output=True)
    _scripted(ai, '{"inner": {"n": 3}}')
    ok = await ai.generate(model='scripted', prompt='x', output_schema=Outer, strict_output=True)
    assert ok.output == Outer(inner=Inner(n=3))
