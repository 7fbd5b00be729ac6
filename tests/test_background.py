"""Background actions and models (spec §3), and wait_for_operation."""

from __future__ import annotations

import asyncio

import genkit
import pytest
from genkit import GenkitError
from genkit.model import ModelRequest
from pydantic import BaseModel

from genkit_parity import InvalidOperationError, Operation, OperationTimeoutError

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
    assert dumped.pop('latencyMs') >= 0
    assert dumped == {'action': '/background-model/bkg-model', 'id': 'op1', 'metadata': {'p': 1}}
    assert response.text == ''
    assert isinstance(jobs.started[0], ModelRequest)


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
    assert (
        raised.value.original_message
        == 'Background action /background-model/bg does not support cancellation.'
    )


async def test_js_errors_for_bad_operations(ai, jobs):
    ai.define_background_model('bg', start=jobs.start, check=jobs.check)
    with pytest.raises(
        GenkitError, match='Provided operation is missing original request information'
    ) as raised:
        await ai.check_operation({'id': 'x'})
    assert raised.value.status == 'INVALID_ARGUMENT'
    with pytest.raises(
        GenkitError,
        match=r'Failed to resolve background action from original request: /background-model/nope',
    ):
        await ai.check_operation({'id': 'x', 'action': '/background-model/nope'})
    with pytest.raises(GenkitError, match='Failed to resolve background action'):
        await ai.cancel_operation({'id': 'x', 'action': 'garbage'})
    with pytest.raises(InvalidOperationError, match="missing the required field 'id'") as missing:
        await ai.check_operation({'action': '/background-model/bg'})
    assert missing.value.status == 'INVALID_ARGUMENT'
    assert isinstance(missing.value, ValueError)
    with pytest.raises(InvalidOperationError, match="'done' must be a boolean"):
        await ai.check_operation({'id': 'x', 'action': '/background-model/bg', 'done': 'yes'})
    with pytest.raises(InvalidOperationError, match='expected an Operation or a dict, got int'):
        await ai.check_operation(42)
    response = await ai.generate(model='bg', prompt='x')
    with pytest.raises(InvalidOperationError, match=r'pass response\.operation'):
        await ai.check_operation(response)


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
        await ai.check_operation(operation, context=['x'])


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
