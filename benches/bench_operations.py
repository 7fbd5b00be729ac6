"""Background operations: check_operation overhead and 1,000 concurrent waits, vs genkit 0.12.

Both sides use the same trivial backend (a check that returns the operation, done after k
checks) registered on one Genkit instance: ours through ``define_background_model``, genkit's
through its own. The baseline drives genkit 0.12's pure-Python ``check_operation`` in an
asyncio polling loop with the same fixed interval our ``wait_for_operation`` uses.
"""

from __future__ import annotations

import asyncio
import functools
import time

import genkit
from genkit.model import Operation as GenkitOperation

from _stats import ratios, summary
from genkit_parity import Genkit

RUNS = 7
CALLS = 2_000
OPERATIONS = 1_000
CHECKS_TO_FINISH = 5
INTERVAL = 0.002


def make_ai() -> tuple[Genkit, dict[str, int]]:
    ai = Genkit()
    checks: dict[str, int] = {}

    def advance(op_id: str) -> bool:
        checks[op_id] = checks.get(op_id, 0) + 1
        return checks[op_id] >= CHECKS_TO_FINISH

    async def our_start(request, ctx):
        return {'id': f'o{len(checks)}-{time.perf_counter_ns()}'}

    async def our_check(op, ctx):
        op.done = advance(op.id)
        return op

    async def their_start(request, ctx):
        return GenkitOperation(id=f't{len(checks)}-{time.perf_counter_ns()}')

    async def their_check(op, ctx):
        return GenkitOperation(id=op.id, action=op.action, done=advance(op.id))

    ai.define_background_model('ours', start=our_start, check=our_check)
    genkit.Genkit.define_background_model(ai, 'theirs', their_start, their_check)
    return ai, checks


def run(body) -> tuple[float, float]:
    """Run ``body`` (an async function returning (wall, cpu)) on a fresh event loop."""
    return asyncio.run(body())


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def per_call(ai: Genkit, model: str, check) -> tuple[float, float]:
    async def body():
        op = await ai.generate_operation(model=model, prompt='x')
        op.done = False
        began = clock()
        for _ in range(CALLS):
            op = await check(op)
            op.done = False
        wall, cpu = since(began)
        return wall / CALLS, cpu / CALLS

    return run(body)


def concurrent_ours(ai: Genkit) -> tuple[float, float]:
    async def body():
        ops = [await ai.generate_operation(model='ours', prompt='x') for _ in range(OPERATIONS)]
        began = clock()
        done = await asyncio.gather(
            *(
                ai.wait_for_operation(op, interval=INTERVAL, max_interval=INTERVAL, multiplier=1, jitter=0)
                for op in ops
            )
        )
        elapsed = since(began)
        assert all(op.done for op in done)
        return elapsed

    return run(body)


def concurrent_genkit(ai: Genkit) -> tuple[float, float]:
    async def poll(op):
        while True:
            op = await genkit.Genkit.check_operation(ai, op)
            if op.done:
                return op
            await asyncio.sleep(INTERVAL)

    async def body():
        ops = [
            await genkit.Genkit.generate_operation(ai, model='theirs', prompt='x') for _ in range(OPERATIONS)
        ]
        began = clock()
        done = await asyncio.gather(*(poll(op) for op in ops))
        elapsed = since(began)
        assert all(op.done for op in done)
        return elapsed

    return run(body)


def measure() -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {
        'call-ours': [],
        'call-genkit': [],
        'many-ours': [],
        'many-genkit': [],
    }
    for _ in range(RUNS):
        ai, _checks = make_ai()
        results['call-genkit'].append(
            per_call(ai, 'theirs', functools.partial(genkit.Genkit.check_operation, ai))
        )
        results['call-ours'].append(per_call(ai, 'ours', ai.check_operation))
        results['many-genkit'].append(concurrent_genkit(ai))
        results['many-ours'].append(concurrent_ours(ai))
    return results


def report(results: dict[str, list[tuple[float, float]]]) -> str:
    def column(name: str, index: int, scale: float) -> list[float]:
        return [pair[index] * scale for pair in results[name]]

    rows = []
    for label, ours, theirs, scale, unit in (
        ('`check_operation`, one call', 'call-ours', 'call-genkit', 1e6, 'µs'),
        (
            f'{OPERATIONS:,} operations × {CHECKS_TO_FINISH} checks, concurrent',
            'many-ours',
            'many-genkit',
            1e3,
            'ms',
        ),
    ):
        for index, kind in ((0, 'wall'), (1, 'CPU')):
            baseline, mine = column(theirs, index, scale), column(ours, index, scale)
            rows.append(
                f'| {label} | {kind} | {summary(baseline, f" {unit}")} | {summary(mine, f" {unit}")} '
                f'| {summary(ratios(baseline, mine), "×", 2)} |'
            )
    return '\n'.join(
        [
            '## Background operations: check and wait',
            '',
            f'Median of {RUNS} runs (min–max); ratio = genkit time / ours, per run. The concurrent rows poll '
            f'every {INTERVAL * 1e3:g} ms (fixed) until each operation, already started, is done after '
            f'{CHECKS_TO_FINISH} checks: '
            'ours with `wait_for_operation` (Rust timers and pacing), genkit with `check_operation` '
            'and `asyncio.sleep`. Both run every check through the traced check action.',
            '',
            '| what | time | genkit 0.12 | ours | speed-up |',
            '|---|---|---:|---:|---:|',
            *rows,
            '',
        ]
    )


def main() -> str:
    return report(measure())


if __name__ == '__main__':
    print(main())
