"""Drive a format's chunk parser the way genkit's ChunkAccumulator does, for differential tests."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from genkit import Message, Part
from genkit.model import ModelResponseChunk


def outcome(fn: Any, *args: Any) -> tuple[str, str]:
    """What ``fn(*args)`` returned or raised, comparable across implementations.

    ``repr`` tells 1 from 1.0 and -0.0 from 0.0, and shows lone surrogates.
    """
    try:
        return ('value', repr(fn(*args)))
    except Exception as exc:
        return ('raises', f'{type(exc).__name__}: {exc}')


def chunk_texts(text: str, sizes: Iterable[int]) -> list[str]:
    """``text`` cut into consecutive pieces of the given sizes (the last takes the rest)."""
    pieces, at = [], 0
    for size in sizes:
        if at >= len(text):
            break
        pieces.append(text[at : at + size])
        at += size
    if at < len(text):
        pieces.append(text[at:])
    return pieces


def random_sizes(seed: int, low: int = 1, high: int = 40) -> list[int]:
    """Chunk sizes as a model might stream them."""
    rng = random.Random(seed)
    return [rng.randint(low, high) for _ in range(10_000)]


def stream_chunks(pieces: Sequence[str], parser: Any) -> list[ModelResponseChunk[Any]]:
    """The chunks genkit hands to a formatter: each with its own copy of the raw ones before it."""
    raws = [ModelResponseChunk(content=[Part(text=p)]) for p in pieces]
    return [
        ModelResponseChunk(raw, index=0, previous_chunks=list(raws[:i]), chunk_parser=parser)
        for i, raw in enumerate(raws)
    ]


def chunk_outcomes(format_def: Any, pieces: Sequence[str], order: Sequence[int] | None = None) -> list[Any]:
    """Each chunk's parsed output (read in ``order``, default first to last), by index."""
    formatter = format_def.handle(None)
    chunks = stream_chunks(pieces, formatter.parse_chunk)
    results: list[Any] = [None] * len(chunks)
    for i in order if order is not None else range(len(chunks)):
        results[i] = outcome(formatter.parse_chunk, chunks[i])
    return results


def message_outcome(format_def: Any, text: str) -> tuple[str, str]:
    """The final message's parsed output."""
    formatter = format_def.handle(None)
    return outcome(formatter.parse_message, Message(role='model', content=[Part(text=text)]))
