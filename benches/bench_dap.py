"""Dynamic action providers: warm lookups and listings, and cold concurrent lookups, vs genkit 0.12.

Both providers return the same tools (made with ``genkit.tool``) and are registered on one
Genkit instance: ours through ``ai.define_dynamic_action_provider``, genkit's through its
own. Every timed call runs on a warm cache except the cold row, which invalidates first.
"""

from __future__ import annotations

import asyncio
import time

import genkit

from _stats import ratios, summary
from genkit_parity import Genkit

SIZES = (10, 1_000, 10_000)
RUNS = 7
WARM_TTL_MS = 3_600_000


def make_tools(count: int) -> list[genkit.Tool]:
    async def noop(q: str) -> str:
        return q

    return [genkit.tool(noop, name=f'tool-{i:05d}', description=f'tool {i}') for i in range(count)]


def providers(tools: list[genkit.Tool]):
    ai = Genkit()
    actions = [tool.action() for tool in tools]

    async def ours_fn():
        return {'tool': tools}

    async def theirs_fn():
        return {'tool': actions}

    # A long TTL keeps the warm rows warm for the whole run (the default 3 s would expire
    # mid-run and refetch, on both sides).
    ours = ai.define_dynamic_action_provider('ours', ours_fn, cache_ttl_millis=WARM_TTL_MS)
    theirs = genkit.Genkit.define_dynamic_action_provider(
        ai, 'theirs', theirs_fn, cache_ttl_millis=WARM_TTL_MS
    )
    return ours, theirs


async def per_call(fn, repeat: int) -> float:
    await fn()  # warm
    began = time.perf_counter()
    for _ in range(repeat):
        await fn()
    return (time.perf_counter() - began) / repeat


async def cold_concurrent(dap, name: str) -> float:
    await dap.get_action('tool', name)
    dap.invalidate_cache()
    began = time.perf_counter()
    await asyncio.gather(*(dap.get_action('tool', name) for _ in range(1_000)))
    return time.perf_counter() - began


COLD_SIZES = (10, 1_000)  # a traced fetch serialises every tool's metadata: costly at 10,000 for both


async def measure_size(size: int, results: dict[tuple[int, str, str], list[float]]) -> None:
    tools = make_tools(size)
    last = tools[-1].name
    prefix = tools[-1].name[:-1] + '*'  # the last ten (or fewer) tools
    ours, theirs = providers(tools)
    many = 2_000 if size <= 1_000 else 200
    few = 100 if size <= 1_000 else 10
    for _run in range(RUNS):
        for label, make_call, repeat in (
            ('warm get_action', lambda d: lambda: d.get_action('tool', last), many),
            ("list_action_metadata('tool', '*')", lambda d: lambda: d.list_action_metadata('tool', '*'), few),
            ('prefix listing', lambda d, p=prefix: lambda: d.list_action_metadata('tool', p), many),
        ):
            results[(size, label, 'genkit')].append(await per_call(make_call(theirs), repeat))
            results[(size, label, 'ours')].append(await per_call(make_call(ours), repeat))
        results[(size, 'keyed reflection listing', 'genkit')].append(
            await per_call(lambda: theirs.list_action_metadata_by_key('theirs'), few)
        )
        results[(size, 'keyed reflection listing', 'ours')].append(
            await per_call(lambda: ours.list_action_metadata_by_key('ours'), few)
        )
        if size in COLD_SIZES:
            results[(size, '1,000 concurrent cold lookups', 'genkit')].append(
                await cold_concurrent(theirs, last)
            )
            results[(size, '1,000 concurrent cold lookups', 'ours')].append(await cold_concurrent(ours, last))


def measure() -> dict[tuple[int, str, str], list[float]]:
    from collections import defaultdict

    results: dict[tuple[int, str, str], list[float]] = defaultdict(list)
    for size in SIZES:
        asyncio.run(measure_size(size, results))
    return results


def report(results: dict[tuple[int, str, str], list[float]]) -> str:
    labels = [
        'warm get_action',
        "list_action_metadata('tool', '*')",
        'prefix listing',
        'keyed reflection listing',
        '1,000 concurrent cold lookups',
    ]
    rows = []
    for label in labels:
        for size in SIZES:
            if (size, label, 'ours') not in results:
                continue
            theirs = [t * 1e6 for t in results[(size, label, 'genkit')]]
            ours = [t * 1e6 for t in results[(size, label, 'ours')]]
            rows.append(
                f'| {label} | {size:,} | {summary(theirs, " µs")} | {summary(ours, " µs")} '
                f'| {summary(ratios(theirs, ours), "×")} |'
            )
    return '\n'.join(
        [
            '## Dynamic action providers: lookups and listings',
            '',
            f'Median of {RUNS} runs (min–max), wall time per call; ratio = genkit time / ours, per run. '
            'Warm rows run on a fresh cache; the prefix matches the last ten tools; the cold row '
            'invalidates the cache and then runs 1,000 concurrent `get_action` calls (one traced fetch '
            'each side; not run at 10,000 tools, where serialising every tool into the trace dominates).',
            '',
            '| what | tools | genkit 0.12 | ours | speed-up |',
            '|---|---:|---:|---:|---:|',
            *rows,
            '',
        ]
    )


def main() -> str:
    return report(measure())


if __name__ == '__main__':
    print(main())
