"""ai.run as JS has it: (name, fn) and (name, input, fn), sync or async, traced as flowStep."""

from __future__ import annotations

import json

import pytest


def step(spans, name):
    found = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0].attributes


async def test_run_name_fn_sync_and_async(ai, spans):
    assert await ai.run('sync-step', lambda: {'a': 1}) == {'a': 1}

    async def later():
        return 'done'

    assert await ai.run('async-step', later) == 'done'
    attrs = step(spans, 'sync-step')
    assert attrs['genkit:type'] == 'flowStep'
    assert json.loads(attrs['genkit:output']) == {'a': 1}
    assert 'genkit:input' not in attrs
    assert step(spans, 'async-step')['genkit:type'] == 'flowStep'


async def test_run_name_input_fn_records_input(ai, spans):
    async def double(x):
        return x * 2

    assert await ai.run('with-input', 21, double) == 42
    assert await ai.run('sync-input', 'ab', lambda s: s.upper()) == 'AB'
    attrs = step(spans, 'with-input')
    assert attrs['genkit:type'] == 'flowStep'
    assert json.loads(attrs['genkit:input']) == 21
    assert json.loads(attrs['genkit:output']) == 42


async def test_genkits_keyword_form_still_works(ai, spans):
    async def fn():
        return [1, 2]

    assert await ai.run(name='kw-step', fn=fn, metadata={'k': 'v'}) == [1, 2]
    assert step(spans, 'kw-step')['genkit:type'] == 'flowStep'
    with pytest.raises(TypeError, match='fn must be a coroutine function'):  # genkit's rule there
        await ai.run(name='kw-sync', fn=lambda: 1)


async def test_bad_run_arguments(ai):
    with pytest.raises(TypeError, match='step name'):
        await ai.run(lambda: 1)
    with pytest.raises(TypeError, match='callable fn'):
        await ai.run('s', 1, 2)
    with pytest.raises(TypeError, match=r'\(name, fn\) or \(name, input, fn\)'):
        await ai.run('s', 1, 2, lambda *a: 0)
