"""Streaming structured output: a 7 KB JSON reply in 298 chunks, reading chunk.output every chunk.

Three generates of the same document on one programmable model, same run: streamed with
genkit 0.12's formats, streamed with ours, and not streamed at all (the floor). Then the
per-chunk parse cost alone: genkit's ``extract_json`` on each accumulated prefix, our
incremental stream, and jiter (PyPI) parsing each prefix from scratch in partial mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import time

import genkit
import jiter
from genkit._core._extract_json import extract_json as genkit_extract_json
from pydantic import BaseModel

from _stats import ratios, summary
from genkit_parity import Genkit
from genkit_parity._native import JsonStream
from genkit_parity.testing.models import define_programmable_model

RUNS = 5
CHUNKS = 298


class Entry(BaseModel):
    id: int
    name: str
    tags: list[str]
    score: float
    active: bool


class Report(BaseModel):
    title: str
    summary: str
    entries: list[Entry]


def document() -> str:
    """A pretty-printed report of about 7,100 characters."""
    entries = [
        {
            'id': i,
            'name': f'Entry number {i} — «{"αβγ"[i % 3]}»',
            'tags': ['alpha', 'beta', f'tag-{i}'],
            'score': round(i * 1.37, 2),
            'active': i % 2 == 0,
        }
        for i in range(41)
    ]
    report = {
        'title': 'Quarterly report',
        'summary': 'A streamed structured answer. ' * 3,
        'entries': entries,
    }
    return json.dumps(report, indent=2, ensure_ascii=False)


def pieces(text: str) -> list[str]:
    """``text`` in CHUNKS consecutive pieces of (nearly) equal size."""
    cuts = [len(text) * i // CHUNKS for i in range(CHUNKS + 1)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


def make(ai: genkit.Genkit, text: str) -> genkit.Genkit:
    define_programmable_model(ai, 'm', respond={'text': text, 'chunks': pieces(text)})
    return ai


async def streamed(ai: genkit.Genkit, read_output: bool = True) -> float:
    began = time.perf_counter()
    stream_response = ai.generate_stream(model='m', prompt='go', output_schema=Report)
    async for chunk in stream_response.stream:
        if read_output:
            chunk.output  # noqa: B018 - reading it is the point
    response = await stream_response.response
    elapsed = time.perf_counter() - began
    assert isinstance(response.output, Report)
    return elapsed


async def unstreamed(ai: genkit.Genkit) -> float:
    began = time.perf_counter()
    response = await ai.generate(model='m', prompt='go', output_schema=Report)
    elapsed = time.perf_counter() - began
    assert isinstance(response.output, Report)
    return elapsed


def generate_rows(label: str, text: str) -> list[str]:
    ours_ai, genkit_ai = make(Genkit(), text), make(genkit.Genkit(), text)
    ours, theirs, floor, unread = [], [], [], []
    for _ in range(RUNS):
        theirs.append(asyncio.run(streamed(genkit_ai)))
        ours.append(asyncio.run(streamed(ours_ai)))
        floor.append(asyncio.run(unstreamed(ours_ai)))
        unread.append(asyncio.run(streamed(ours_ai, read_output=False)))
    return [
        f'| {label}: genkit 0.12 streamed | {summary([t * 1e3 for t in theirs], " ms")} | |',
        f'| {label}: genkit-parity streamed | {summary([t * 1e3 for t in ours], " ms")} | '
        f'{summary(ratios(theirs, ours), "×")} faster |',
        f'| {label}: not streamed (floor) | {summary([t * 1e3 for t in floor], " ms")} | '
        f'streamed/unstreamed {summary(ratios(ours, floor), "×", 2)} |',
        f'| {label}: streamed, `chunk.output` never read | {summary([t * 1e3 for t in unread], " ms")} | '
        f"genkit's own streaming: {summary(ratios(unread, floor), '×', 2)} of the floor |",
    ]


def per_chunk(text: str) -> dict[str, list[float]]:
    parts = pieces(text)
    prefixes = [text[: sum(len(p) for p in parts[: i + 1])] for i in range(len(parts))]
    start = text.index('{')

    def genkit_pass() -> None:
        for prefix in prefixes:
            genkit_extract_json(prefix, throw_on_bad_json=False)

    def ours_pass() -> None:
        stream = JsonStream()
        for part in parts:
            stream.push(part)

    def jiter_pass() -> None:
        for prefix in prefixes:
            with contextlib.suppress(ValueError):  # (before the '{', or mid-number)
                jiter.from_json(prefix[start:].encode(), partial_mode='trailing-strings')

    results: dict[str, list[float]] = {'genkit': [], 'ours': [], 'jiter': []}
    for _ in range(RUNS):
        for name, fn in (('genkit', genkit_pass), ('ours', ours_pass), ('jiter', jiter_pass)):
            began = time.perf_counter()
            fn()
            results[name].append((time.perf_counter() - began) / len(parts))
    return results


def main() -> str:
    raw = document()
    fenced = 'Here is the report:\n```json\n' + raw + '\n```\n'
    lines = [
        '## Streaming structured output (issue 6)',
        '',
        f'One {len(raw):,}-character JSON report streamed in {len(pieces(raw))} chunks by a programmable '
        'model, `output_schema` a Pydantic model, `chunk.output` read on every chunk; median of '
        f'{RUNS} runs (min–max).',
        '',
        '| generate | time | ratio |',
        '|---|---|---|',
        *generate_rows('raw', raw),
        *generate_rows('fenced', fenced),
        '',
        f'Parse cost per chunk alone (the same {len(pieces(fenced))} prefixes of the fenced text):',
        '',
        '| parser | per chunk | genkit / this |',
        '|---|---|---|',
    ]
    costs = per_chunk(fenced)
    for name, label in (
        ('genkit', 'genkit 0.12 `extract_json` (whole prefix)'),
        ('ours', 'genkit-parity `JsonStream.push` (new text only)'),
        ('jiter', 'jiter 0.19 `from_json` partial mode (whole prefix, from scratch)'),
    ):
        speedup = ratios(costs['genkit'], costs[name])
        lines.append(
            f'| {label} | {summary([c * 1e6 for c in costs[name]], " µs")} | {summary(speedup, "×")} |'
        )
    lines.append('')
    lines.append(
        f'(median per-chunk: ours {statistics.median(costs["ours"]) * 1e6:.1f} µs vs jiter from scratch '
        f'{statistics.median(costs["jiter"]) * 1e6:.1f} µs)'
    )
    lines.append('')
    return '\n'.join(lines)


if __name__ == '__main__':
    print(main())
