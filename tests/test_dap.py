"""Dynamic action providers (spec §4): cache semantics, queries, registry and generate wiring."""

from __future__ import annotations

import asyncio
import threading

import pytest


class Provider:
    """A provider function that counts its calls; ``delay`` keeps a fetch in flight."""

    def __init__(self, value, delay: float = 0.0, fail_times: int = 0) -> None:
        self.value = value
        self.delay = delay
        self.fail_times = fail_times
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError('Fetch failed')
        return self.value


@pytest.fixture
def tools(ai):
    @ai.tool()
    async def tool1(q: str) -> str:
        return 'one:' + q

    @ai.tool()
    async def tool2(q: str) -> str:
        return 'two:' + q

    @ai.tool(name='other-tool')
    async def other(q: str) -> str:
        return 'other:' + q

    return [tool1, tool2, other]


async def test_get_action_returns_the_provided_action(ai, tools):
    provider = Provider({'tool': tools})
    dap = ai.define_dynamic_action_provider('my-dap', provider)
    action = await dap.get_action('tool', 'tool1')
    assert action is tools[0].action()
    assert await dap.get_action('tool', 'nope') is None
    assert await dap.get_action('resource', 'tool1') is None
    assert dap.get_action_nowait('tool', 'tool2') is tools[1].action()
    assert provider.calls == 1


def test_get_action_nowait_on_a_cold_cache(ai, tools):
    dap = ai.define_dynamic_action_provider('cold', Provider({'tool': tools}))
    with pytest.raises(LookupError, match='cache is cold'):
        dap.get_action_nowait('tool', 'tool1')


@pytest.mark.parametrize(('ttl', 'calls'), [(None, 1), (0, 1), (-1, 3), (50, 1)])
async def test_ttl_call_counts_match_js(ai, tools, ttl, calls):
    provider = Provider({'tool': tools}, delay=0.01)
    dap = ai.define_dynamic_action_provider('dap', provider, cache_ttl_millis=ttl)
    await dap.get_action('tool', 'tool1')
    await dap.get_action('tool', 'tool1')
    await asyncio.gather(dap.list_action_metadata('tool', '*'), dap.list_action_metadata('tool', '*'))
    assert provider.calls == calls


async def test_ttl_expiry_and_invalidate(ai, tools):
    provider = Provider({'tool': tools})
    dap = ai.define_dynamic_action_provider('dap', provider, cache_ttl_millis=30)
    await dap.get_action('tool', 'tool1')
    await dap.get_action('tool', 'tool1')
    assert provider.calls == 1
    await asyncio.sleep(0.06)
    await dap.get_action('tool', 'tool1')
    assert provider.calls == 2
    dap.invalidate_cache()
    await dap.get_action('tool', 'tool1')
    assert provider.calls == 3


async def test_thousand_concurrent_cold_lookups_fetch_once(ai, tools):
    provider = Provider({'tool': tools}, delay=0.05)
    dap = ai.define_dynamic_action_provider('dap', provider)
    found = await asyncio.gather(*(dap.get_action('tool', 'tool2') for _ in range(1000)))
    assert provider.calls == 1
    assert all(action is tools[1].action() for action in found)


def test_one_fetch_across_threads_with_their_own_loops(ai, tools):
    provider = Provider({'tool': tools}, delay=0.3)
    dap = ai.define_dynamic_action_provider('dap', provider)
    barrier = threading.Barrier(4)
    results: list[object] = []

    def worker() -> None:
        async def lookups():
            barrier.wait()
            return await asyncio.gather(*(dap.get_action('tool', 'tool1') for _ in range(25)))

        results.extend(asyncio.run(lookups()))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert provider.calls == 1
    assert len(results) == 100 and all(action is tools[0].action() for action in results)


async def test_cancelled_callers_do_not_cancel_the_shared_fetch(ai, tools):
    provider = Provider({'tool': tools}, delay=0.1)
    dap = ai.define_dynamic_action_provider('dap', provider)
    leader = asyncio.ensure_future(dap.get_action('tool', 'tool1'))
    await asyncio.sleep(0.01)
    follower = asyncio.ensure_future(dap.get_action('tool', 'tool1'))
    survivor = asyncio.ensure_future(dap.get_action('tool', 'tool2'))
    await asyncio.sleep(0.01)
    leader.cancel()
    follower.cancel()
    assert await survivor is tools[1].action()
    for cancelled in (leader, follower):
        with pytest.raises(asyncio.CancelledError):
            await cancelled
    assert provider.calls == 1
    assert dap.get_action_nowait('tool', 'tool1') is tools[0].action()


async def test_failed_fetch_is_shared_not_cached_and_retried(ai, tools):
    provider = Provider({'tool': tools}, delay=0.02, fail_times=1)
    dap = ai.define_dynamic_action_provider('dap', provider)
    first = await asyncio.gather(*(dap.get_action('tool', 'tool1') for _ in range(5)), return_exceptions=True)
    assert all(isinstance(e, RuntimeError) and str(e) == 'Fetch failed' for e in first)
    assert provider.calls == 1
    assert await dap.get_action('tool', 'tool1') is tools[0].action()
    assert provider.calls == 2


async def test_wildcard_listing(ai, tools):
    dap = ai.define_dynamic_action_provider('dap', Provider({'tool': tools}))
    assert [m['name'] for m in await dap.list_action_metadata('tool', '*')] == [
        'tool1',
        'tool2',
        'other-tool',
    ]
    assert [m['name'] for m in await dap.list_action_metadata('tool', 'tool*')] == ['tool1', 'tool2']
    assert [m['name'] for m in await dap.list_action_metadata('tool', 'other-tool')] == ['other-tool']
    assert await dap.list_action_metadata('tool', 'zzz*') == []
    assert await dap.list_action_metadata('resource', '*') == []
    entry = (await dap.list_action_metadata('tool', 'tool1'))[0]
    assert entry['key'] == '/dynamic-action-provider/dap:tool/tool1'
    assert entry['inputSchema'] == {'type': 'string'}


async def test_listing_by_key(ai, tools):
    provider = Provider({'tool': tools[:2], 'resource': [tools[2]]})
    dap = ai.define_dynamic_action_provider('my-dap', provider)
    rows = await dap.list_action_metadata_by_key('my-dap')
    assert list(rows) == [
        '/dynamic-action-provider/my-dap:tool/tool1',
        '/dynamic-action-provider/my-dap:tool/tool2',
        '/dynamic-action-provider/my-dap:resource/other-tool',
    ]
    assert rows['/dynamic-action-provider/my-dap:tool/tool1'].name == 'tool1'
    assert provider.calls == 1


async def test_registry_resolves_dap_keys(ai, tools):
    ai.define_dynamic_action_provider('mcp-host', Provider({'tool': tools}))
    action = await ai.registry.resolve_action_by_key('/dynamic-action-provider/mcp-host:tool/tool2')
    assert action is tools[1].action()
    assert (await action.run('x')).response.output == 'two:x'


def call_every_tool(request, send_chunk):
    names = [tool.name for tool in request.tools or []]
    last = request.messages[-1]
    if last.role == 'tool':
        return 'results: ' + ','.join(sorted(str(part.tool_response.output) for part in last.content))
    return {'tool_requests': [{'name': name, 'input': 'q', 'ref': name} for name in names]}


@pytest.mark.parametrize(
    ('selector', 'expected'),
    [
        ('mcp:tool/*', 'results: one:q,other:q,two:q'),
        ('mcp:tool/tool*', 'results: one:q,two:q'),
        ('mcp:tool/tool2', 'results: two:q'),
    ],
)
async def test_generate_with_provided_tools(ai, tools, programmable_model, selector, expected):
    programmable_model.respond_with(call_every_tool)
    ai.define_dynamic_action_provider('mcp', Provider({'tool': tools}))
    response = await ai.generate(model='programmableModel', prompt='go', tools=[selector])
    assert response.text == expected


async def test_chat_keeps_provided_tools_on_every_send(ai, tools, programmable_model):
    programmable_model.respond_with(call_every_tool)
    provider = Provider({'tool': tools[:1]})
    ai.define_dynamic_action_provider('mcp', provider)
    chat = ai.chat(model='programmableModel', tools=['mcp:tool/*'])
    assert (await chat.send('one')).text == 'results: one:q'
    assert (await chat.send('two')).text == 'results: one:q'
    assert provider.calls == 1


async def test_dynamic_tool_is_unregistered_but_usable(ai, programmable_model):
    shout = ai.dynamic_tool(lambda text: text.upper(), name='shout', description='upper-cases')
    assert shout.action().metadata['dynamic'] is True
    assert await ai.registry.resolve_action_by_key('/tool.v2/shout') is None
    programmable_model.respond_with(call_every_tool)
    response = await ai.generate(model='programmableModel', prompt='go', tools=[shout])
    assert response.text == 'results: Q'


async def test_fetch_for_a_lookup_is_traced_listing_is_not(ai, tools, spans):
    listed = ai.define_dynamic_action_provider('listed-dap', Provider({'tool': tools}))
    await listed.list_action_metadata_by_key('listed-dap')
    assert [s.name for s in spans.get_finished_spans()] == []
    looked_up = ai.define_dynamic_action_provider('traced-dap', Provider({'tool': tools}))
    await looked_up.get_action('tool', 'tool1')
    fetches = [s for s in spans.get_finished_spans() if s.name == 'traced-dap']
    assert len(fetches) == 1
    assert fetches[0].attributes['genkit:type'] == 'action'
    assert fetches[0].attributes['genkit:metadata:subtype'] == 'dynamic-action-provider'
    assert '"tool1"' in fetches[0].attributes['genkit:output']


async def test_bad_provider_values_are_typed_errors(ai, tools):
    cases = [
        (['not', 'a', 'dict'], 'must return a dict of action type'),
        ({'tool': 'tool1'}, r"value\['tool'\] must be a list of actions"),
        ({'tool': [tools[0], 42]}, r"value\['tool'\]\[1\] is not a named action or tool \(got int\)"),
        ({3: []}, 'action type 3 is not a str'),
    ]
    for index, (value, message) in enumerate(cases):
        dap = ai.define_dynamic_action_provider(f'bad{index}', Provider(value))
        with pytest.raises(TypeError, match=message):
            await dap.get_action('tool', 'tool1')


def test_bad_definitions(ai):
    with pytest.raises(ValueError, match='without ":" or "/"'):
        ai.define_dynamic_action_provider('a:b', Provider({}))
    with pytest.raises(TypeError, match='fn must be callable'):
        ai.define_dynamic_action_provider('x', 42)
    with pytest.raises(TypeError, match='cache_ttl_millis must be an int'):
        ai.define_dynamic_action_provider('y', Provider({}), cache_ttl_millis='soon')


async def test_bad_keys_resolve_to_nothing(ai, tools):
    ai.define_dynamic_action_provider('host', Provider({'tool': tools}))
    for key in ('/dynamic-action-provider/host:tool/nope', '/dynamic-action-provider/nohost:tool/tool1'):
        try:
            resolved = await ai.registry.resolve_action_by_key(key)
        except ValueError as error:
            assert 'nope' in str(error) or 'nohost' in str(error)
        else:
            assert resolved is None


async def test_provider_is_genkits_provider_class(ai):
    from genkit._core._dap import DynamicActionProvider as GenkitProvider

    async def tools():
        return {'tool': [ai.dynamic_tool(lambda: 'x', name='t1', description='d')]}

    dap = ai.define_dynamic_action_provider('mine', tools)
    assert isinstance(dap, GenkitProvider)
    # genkit's keyword names work on our methods too
    assert (await dap.get_action(action_type='tool', action_name='t1')).name == 't1'
    assert [m['name'] for m in await dap.list_action_metadata(action_type='tool', action_name='t*')] == ['t1']
