"""Background actions and models (spec §3), and wait_for_operation."""

from __future__ import annotations

import asyncio

import genkit
import pytest
from genkit import GenkitError
from genkit.model import ModelRequest
from pydantic import BaseModel

from genkit_parity import InvalidOperationError, Operation, OperationTimeoutError
from genkit_parity.background import to_operation

DONE_OUTPUT = {'finishReason': 'stop', 'message': {'role': 'model', 'content': [{'text': 'done'}]}}


class Jobs:
    """A fake long-running backend: each job is done after ``checks_needed`` checks."""

    def __init__(self, checks_needed: int = 1) -> None:
        self.checks_needed = checks_needed
        self.checks: dict[str, int] = {}
        self.started: list[object] = []
        self.contexts: list[object] = []

    async def start(self, request, ctx):
        self.started.append(request)
        job_id = f'op{len(self.started)}'
        self.checks[job_id] = 0
        return {'id': job_id, 'metadata': {'p': 1}}

    async def check(self, op, ctx):
        self.contexts.append(ctx.context)
        self.checks[op.id] += 1
        if self.checks[op.id] >= self.checks_needed:
            return {'id': op.id, 'done': True, 'output': DONE_OUTPUT}
        return {'id': op.id, 'done': False, 'metadata': {'progress': self.checks[op.id]}}

    def cancel(self, op):
        return {'id': op.id, 'done': True, 'error': {'message': 'cancelled'}}


@pytest.fixture
def jobs() -> Jobs:
    return Jobs()


async def test_generate_starts_the_operation(ai, jobs):
    ai.define_background_model('bkg-model', start=jobs.start, check=jobs.check)
    response = await ai.generate(model='bkg-model', prompt='hi', tools=[])
    operation = response.operation
    assert isinstance(operation, Operation)
    dumped = operation.model_dump(by_alias=True, exclude_none=True)
    assert dumped == {'action': '/background-model/bkg-model', 'id': 'op1', 'metadata': {'p': 1}}
    assert response.text == ''
    assert isinstance(jobs.started[0], ModelRequest)
    # genkit's save/reload path: its own Operation takes the dump back, and it checks.
    reloaded = genkit.model.Operation.model_validate(operation.model_dump(by_alias=True))
    assert (await ai.check_operation(reloaded)).done is True


async def test_report_latency_adds_js_latency_ms(ai, jobs):
    ai.define_background_model('timed', start=jobs.start, check=jobs.check, report_latency=True)
    operation = (await ai.generate(model='timed', prompt='hi')).operation
    dumped = operation.model_dump(by_alias=True, exclude_none=True)
    assert isinstance(dumped.pop('latencyMs'), float) and operation.latencyMs >= 0
    assert dumped == {'action': '/background-model/timed', 'id': 'op1', 'metadata': {'p': 1}}


async def test_background_model_enforces_its_config_class(ai, jobs):
    class VideoConfig(BaseModel):
        seconds: int = 5

    class OtherConfig(BaseModel):
        seconds: int = 5

    ai.define_background_model('video', start=jobs.start, check=jobs.check, config_schema=VideoConfig)
    with pytest.raises(
        GenkitError, match=r'config must be .*VideoConfig or a mapping, got .*OtherConfig'
    ) as bad:
        await ai.generate_operation(model='video', prompt='hi', config=OtherConfig())
    assert bad.value.status == 'INVALID_ARGUMENT'
    assert jobs.started == []  # rejected before start()
    await ai.generate_operation(model='video', prompt='hi', config=VideoConfig(seconds=8))
    await ai.generate_operation(model='video', prompt='hi', config={'seconds': 9})
    configs = [r.config if isinstance(r.config, dict) else r.config.model_dump() for r in jobs.started]
    assert [c['seconds'] for c in configs] == [8, 9]


async def test_check_and_cancel(ai, jobs):
    ai.define_background_model('bkg-model', start=jobs.start, check=jobs.check, cancel=jobs.cancel)
    operation = (await ai.generate(model='bkg-model', prompt='hi')).operation
    checked = await ai.check_operation(operation)
    assert checked.model_dump(by_alias=True, exclude_none=True) == {
        'id': 'op1',
        'done': True,
        'output': DONE_OUTPUT,
        'action': '/background-model/bkg-model',
    }
    cancelled = await ai.cancel_operation(operation)
    assert cancelled.action == '/background-model/bkg-model'
    assert cancelled.error.message == 'cancelled'


async def test_cancel_without_cancel_support_is_unimplemented(ai, jobs):
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operation = (await ai.generate(model='bg', prompt='hi')).operation
    with pytest.raises(GenkitError) as raised:
        await ai.cancel_operation(operation)
    assert raised.value.status == 'UNIMPLEMENTED'
    assert raised.value.reason is genkit.RuntimeErrorReason.UNSUPPORTED_BY_MODEL
    assert (
        raised.value.original_message
        == 'Background action /background-model/bg does not support cancellation.'
    )


async def test_errors_for_bad_operations_are_genkits(ai, jobs):
    reason = genkit.RuntimeErrorReason
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    with pytest.raises(
        GenkitError, match='Provided operation is missing original request information'
    ) as raised:
        await ai.check_operation(Operation(id='x'))
    assert raised.value.status == 'INVALID_ARGUMENT' and raised.value.reason is reason.INVALID_INPUT
    with pytest.raises(
        GenkitError,
        match=r'Failed to resolve background action from original request: /background-model/nope',
    ) as raised:
        await ai.check_operation(Operation(id='x', action='/background-model/nope'))
    assert raised.value.reason is reason.ACTION_NOT_FOUND
    with pytest.raises(GenkitError, match='Failed to resolve background action'):
        await ai.cancel_operation(Operation(id='x', action='garbage'))
    # As genkit: the poll handle is an Operation; a dump or a string is the caller's mistake.
    for bad, message in (
        ({'id': 'x', 'action': '/background-model/bg'}, r'got a dump; pass Operation\.model_validate'),
        ('{"id": "x"}', 'got str, expected Operation'),
        (42, 'got int, expected Operation'),
        (await ai.generate(model='bg', prompt='x'), r'got ModelResponse; pass response\.operation'),
    ):
        for call in (ai.check_operation, ai.cancel_operation):
            with pytest.raises(GenkitError, match=message) as raised:
                await call(bad)
            assert raised.value.status == 'INVALID_ARGUMENT' and raised.value.reason is reason.INVALID_INPUT


def test_to_operation_reads_js_operation_json():
    assert to_operation({'id': 'x', 'done': False}) == Operation(id='x', done=False)
    assert to_operation('{"id": "y", "latencyMs": 3}').model_dump(by_alias=True, exclude_none=True) == {
        'id': 'y',
        'latencyMs': 3,
    }
    with pytest.raises(InvalidOperationError, match="missing the required field 'id'") as missing:
        to_operation({'action': '/background-model/bg'})
    assert missing.value.status == 'INVALID_ARGUMENT'
    assert isinstance(missing.value, ValueError)
    with pytest.raises(InvalidOperationError, match="'done' must be a boolean"):
        to_operation({'id': 'x', 'action': '/background-model/bg', 'done': 'yes'})
    with pytest.raises(InvalidOperationError, match='expected an Operation or a dict, got int'):
        to_operation(42)


async def test_interop_with_genkits_own_check_operation(ai, jobs):
    ai.define_background_model('ours', start=jobs.start, check=jobs.check)
    operation = (await ai.generate(model='ours', prompt='hi')).operation
    checked = await genkit.Genkit.check_operation(ai, operation)
    assert checked.done is True and checked.action == '/background-model/ours'

    async def their_start(request, ctx):
        return genkit.model.Operation(id='theirs-1')

    async def their_check(op, ctx):
        return genkit.model.Operation(id=op.id, done=True, output={'ok': True})

    genkit.Genkit.define_background_model(ai, 'theirs', their_start, their_check)
    their_op = (await ai.generate(model='theirs', prompt='hi')).operation
    ours_checking_theirs = await ai.check_operation(their_op)
    assert ours_checking_theirs.done is True
    assert ours_checking_theirs.output == {'ok': True}
    done = await ai.wait_for_operation(their_op.model_dump(by_alias=True, exclude_none=True), interval=0.01)
    assert done.action == '/background-model/theirs'


async def test_generate_operation(ai, jobs):
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operation = await ai.generate_operation(model='bg', prompt='hi')
    assert operation.id == 'op1' and operation.action == '/background-model/bg'


async def test_context_and_config_reach_check(ai, jobs):
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operation = (await ai.generate(model='bg', prompt='hi')).operation
    await ai.check_operation(operation, context={'auth': {'customKey': 'secret'}}, config={'location': 'eu'})
    assert jobs.contexts[-1] == {'auth': {'customKey': 'secret'}, 'config': {'location': 'eu'}}


async def test_generic_background_action(ai):
    class Render(BaseModel):
        scene: int

    started = []

    def start(job: Render):  # sync, without ctx: both are accepted
        started.append(job)
        return Operation(id=f'render-{job.scene}')

    def check(op):
        return {'id': op.id, 'done': True, 'output': {'frames': 24}}

    action = ai.define_background_action(
        'render',
        start=start,
        check=check,
        input_schema=Render,
        output_schema=dict,
        description='Render a scene',
    )
    assert {a.name for a in (action.start_action, action.check_action)} == {'render', 'render/check'}
    assert action.cancel_action is None
    assert (await ai.registry.resolve_action_by_key('/custom/render')) is not None
    assert (await ai.registry.resolve_action_by_key('/check-operation/render/check')) is not None
    operation = await action.start({'scene': 3})
    assert started == [Render(scene=3)]
    assert operation.action == '/custom/render'
    done = await ai.wait_for_operation(operation, interval=0.01)
    assert done.output == {'frames': 24} and done.action == '/custom/render'
    with pytest.raises(ValueError, match='action_type must be one of'):
        ai.define_background_action('x', start=start, check=check, action_type='nope')
    with pytest.raises(TypeError, match='check must be callable'):
        ai.define_background_action('y', start=start, check=None)


async def test_start_that_returns_no_operation(ai):
    ai.define_background_model('broken', start=lambda request: 'not an operation', check=lambda op: op)
    with pytest.raises(GenkitError, match='did not return an operation'):
        await ai.generate_operation(model='broken', prompt='hi')


# -- wait_for_operation ------------------------------------------------------------------


async def test_wait_returns_the_finished_operation(ai):
    jobs = Jobs(checks_needed=4)
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operation = (await ai.generate(model='bg', prompt='hi')).operation
    done = await ai.wait_for_operation(operation, interval=0.001, max_interval=0.004)
    assert done.done is True and done.output == DONE_OUTPUT
    assert jobs.checks['op1'] == 4


async def test_wait_on_a_done_operation_does_not_check(ai, jobs):
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    done = await ai.wait_for_operation({'id': 'x', 'action': '/background-model/bg', 'done': True})
    assert done.done is True
    assert jobs.checks == {}


async def test_thousand_concurrent_operations(ai):
    jobs = Jobs(checks_needed=3)
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operations = [await ai.generate_operation(model='bg', prompt=str(i)) for i in range(1000)]
    finished = await asyncio.gather(
        *(ai.wait_for_operation(op, interval=0.005, max_interval=0.02) for op in operations)
    )
    assert len({op.id for op in finished}) == 1000
    assert all(op.done and op.output == DONE_OUTPUT for op in finished)
    assert set(jobs.checks.values()) == {3}


async def test_cancelling_the_waiter_stops_polling(ai):
    jobs = Jobs(checks_needed=10_000)
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operation = (await ai.generate(model='bg', prompt='hi')).operation
    waiter = asyncio.ensure_future(
        ai.wait_for_operation(operation, interval=0.01, max_interval=0.01, jitter=0)
    )
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    checks_at_cancel = jobs.checks['op1']
    assert 3 <= checks_at_cancel <= 15
    await asyncio.sleep(0.1)
    assert jobs.checks['op1'] == checks_at_cancel


async def test_check_that_raises_ends_the_wait(ai):
    calls = []

    def check(op):
        calls.append(op.id)
        raise RuntimeError('backend down')

    ai.define_background_model('bg', start=lambda request: {'id': 'j'}, check=check)
    operation = (await ai.generate(model='bg', prompt='hi')).operation
    with pytest.raises(GenkitError, match='backend down'):
        await ai.wait_for_operation(operation, interval=0.001)
    assert calls == ['j']


async def test_timeout_carries_the_last_state(ai):
    jobs = Jobs(checks_needed=10_000)
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operation = (await ai.generate(model='bg', prompt='hi')).operation
    began = asyncio.get_running_loop().time()
    with pytest.raises(OperationTimeoutError) as raised:
        await ai.wait_for_operation(operation, interval=0.02, max_interval=0.05, timeout=0.2)
    waited = asyncio.get_running_loop().time() - began
    error = raised.value
    assert error.status == 'DEADLINE_EXCEEDED' and isinstance(error, TimeoutError)
    assert error.checks == jobs.checks['op1'] >= 3
    assert error.operation.metadata == {'progress': error.checks}
    assert 0.2 <= waited < 1.0


async def test_bad_wait_arguments(ai, jobs):
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    operation = {'id': 'x', 'action': '/background-model/bg'}
    with pytest.raises(ValueError, match='interval must be a positive number'):
        await ai.wait_for_operation(operation, interval=0)
    with pytest.raises(ValueError, match='max_interval must be at least interval'):
        await ai.wait_for_operation(operation, interval=2, max_interval=1)
    with pytest.raises(ValueError, match='jitter must be between 0 and 1'):
        await ai.wait_for_operation(operation, jitter=2)
    with pytest.raises(TypeError):
        await ai.wait_for_operation(operation, timeout='soon')
    with pytest.raises(TypeError, match='context must be a mapping'):
        await ai.check_operation(Operation.model_validate(operation), context=['x'])


async def test_redefinition_is_seen_by_check(ai):
    ai.define_background_model(
        'bg', start=lambda request: {'id': 'j'}, check=lambda op: {'id': op.id, 'metadata': {'v': 1}}
    )
    operation = (await ai.generate(model='bg', prompt='hi')).operation
    assert (await ai.check_operation(operation)).metadata == {'v': 1}
    ai.define_background_model(
        'bg', start=lambda request: {'id': 'j'}, check=lambda op: {'id': op.id, 'metadata': {'v': 2}}
    )
    assert (await ai.check_operation(operation)).metadata == {'v': 2}
