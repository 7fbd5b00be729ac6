"""Per-turn persistence cost: our file and SQLite stores vs genkit 0.12's agents FileSessionStore.

A turn adds two messages (~200 characters each) to a history of N messages. Ours persists
the turn the way a chat does (``Session._commit_thread``: serialise the new messages,
append them through the Rust core). genkit 0.12's pure-Python agents store saves a new
snapshot holding the whole history (``FileSessionStore.save_snapshot``), which is what an
agent turn does. Both write to the same temporary directory, in the same process and run.
"""

from __future__ import annotations

import asyncio
import datetime
import tempfile
import time
from pathlib import Path

from genkit import Message, Part
from genkit._ai._agents._session_stores._file_store import FileSessionStore as GenkitFileStore
from genkit._core._model import SessionSnapshot, SessionState

from _stats import ratios, summary
from genkit_parity import FileSessionStore, Genkit, SqliteSessionStore

SIZES = (10, 100, 1_000, 10_000)
RUNS = 7
TEXT = ('lorem ipsum dolor sit amet consectetur adipiscing elit ' * 4)[:200]


def make_messages(count: int, start: int = 0) -> list[Message]:
    roles = ('user', 'model')
    return [
        Message(role=roles[i % 2], content=[Part(text=f'{i:06d} {TEXT}'[:200])])
        for i in range(start, start + count)
    ]


def turns_for(size: int) -> int:
    return 40 if size <= 1_000 else 20


async def ours_per_turn(store, history: list[Message], turns: int) -> float:
    ai = Genkit()
    session = ai.create_session(store=store)
    await session.update_messages('main', history)  # the history is stored once, up front
    messages = list(history)
    elapsed = 0.0
    for _ in range(turns):
        new = make_messages(2, len(messages))
        grown = messages + new  # built outside the timer: a chat gets it from generate
        began = time.perf_counter()
        await session._commit_thread('main', grown, first_new=len(messages))
        elapsed += time.perf_counter() - began
        messages = grown
    return elapsed / turns


async def genkit_per_turn(directory: Path, history: list[Message], turns: int) -> float:
    store = GenkitFileStore(str(directory))
    messages = list(history)
    parent = None
    elapsed = 0.0
    for turn in range(turns):
        grown = messages + make_messages(2, len(messages))
        snapshot_id = f'snap-{turn}'
        snapshot = SessionSnapshot(
            snapshot_id=snapshot_id,
            session_id='bench',
            parent_id=parent,
            created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            state=SessionState(session_id='bench', messages=grown),
        )
        began = time.perf_counter()
        await store.save_snapshot(snapshot_id, lambda _existing, s=snapshot: s)
        elapsed += time.perf_counter() - began
        messages, parent = grown, snapshot_id
    return elapsed / turns


async def measure() -> dict[int, dict[str, list[float]]]:
    results: dict[int, dict[str, list[float]]] = {n: {'genkit': [], 'file': [], 'sqlite': []} for n in SIZES}
    for _run in range(RUNS):
        for size in SIZES:
            history = make_messages(size)
            turns = turns_for(size)
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                results[size]['genkit'].append(await genkit_per_turn(root / 'genkit', history, turns))
                results[size]['file'].append(
                    await ours_per_turn(FileSessionStore(root / 'ours'), history, turns)
                )
                results[size]['sqlite'].append(
                    await ours_per_turn(SqliteSessionStore(root / 'ours.sqlite'), history, turns)
                )
    return results


def report(results: dict[int, dict[str, list[float]]]) -> str:
    lines = [
        '## Session persistence: cost of one turn (2 new messages) vs history size',
        '',
        f'Median of {RUNS} runs (min–max). Times in µs per turn; ratio = genkit time / ours, per run.',
        '',
        '| history | genkit 0.12 agents FileSessionStore | ours: file | ours: SQLite | speed-up file | speed-up SQLite |',
        '|---:|---:|---:|---:|---:|---:|',
    ]
    for size, by_store in results.items():
        micro = {name: [t * 1e6 for t in times] for name, times in by_store.items()}
        lines.append(
            f'| {size:,} | {summary(micro["genkit"])} | {summary(micro["file"])} | {summary(micro["sqlite"])} '
            f'| {summary(ratios(by_store["genkit"], by_store["file"]), "×")} '
            f'| {summary(ratios(by_store["genkit"], by_store["sqlite"]), "×")} |'
        )
    return '\n'.join(lines) + '\n'


def main() -> str:
    return report(asyncio.run(measure()))


if __name__ == '__main__':
    print(main())
