"""Embedders that need no network: a deterministic toy one and a real offline one.

``define_toy_embedder`` maps a text to letter counts (``'abc'`` → ``[1.0, 1.0, 1.0]``), the
embedder the JS reference outputs were observed with, so retrieval orders and scores can be
checked exactly. ``define_static_embedder`` wraps ``tokenlearn-static-model`` (a 7 MB wheel with
baked 64-dimensional weights; ``pip install 'genkit-parity[embed]'``), a real semantic embedder
for demos and tests that works offline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import genkit
from genkit import Document
from genkit.embedder import EmbedderInfo, EmbedderSupports

__all__ = ['STATIC_EMBEDDER_DIMENSIONS', 'define_static_embedder', 'define_toy_embedder']

#: Dimensions of the ``tokenlearn-static-model`` embeddings.
STATIC_EMBEDDER_DIMENSIONS = 64


def _texts(request: Any) -> list[str]:
    return [
        Document.model_validate(doc).text if not isinstance(doc, Document) else doc.text
        for doc in request.input
    ]


def _response(vectors: list[list[float]]) -> Any:
    return genkit.embedder.EmbedResponse(embeddings=[genkit.Embedding(embedding=v) for v in vectors])


def _define(ai: genkit.Genkit, name: str, embed: Callable[[list[str]], Any], info: EmbedderInfo) -> Any:
    async def embedder(request: Any) -> Any:
        return _response(await embed(_texts(request)))

    return ai.define_embedder(name, embedder, info=info)


def define_toy_embedder(ai: genkit.Genkit, name: str = 'toyEmbedder', *, letters: str = 'abc') -> Any:
    """Register an embedder mapping a text to how often each of ``letters`` occurs in it.

    Deterministic and exact: with the default ``'abc'``, ``'aab'`` → ``[2.0, 1.0, 0.0]``.
    Returns the embedder action.
    """
    if not isinstance(letters, str) or not letters:
        raise TypeError('letters must be a non-empty str')

    async def count(texts: list[str]) -> list[list[float]]:
        return [[float(text.count(letter)) for letter in letters] for text in texts]

    info = EmbedderInfo(
        label=f'Letter counts ({letters})', dimensions=len(letters), supports=EmbedderSupports(input=['text'])
    )
    return _define(ai, name, count, info)


def define_static_embedder(ai: genkit.Genkit, name: str = 'staticEmbedder') -> Any:
    """Register ``tokenlearn-static-model`` (64 dimensions, normalised) as a Genkit embedder.

    Raises ``ImportError`` naming the extra when the package is not installed. The model
    runs in a worker thread, so the event loop is never blocked by it.
    """
    try:
        from static_model import get_embeddings
    except ImportError as error:
        raise ImportError(
            "define_static_embedder needs tokenlearn-static-model: pip install 'genkit-parity[embed]'"
        ) from error

    async def encode(texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors: list[list[float]] = await asyncio.to_thread(get_embeddings, texts)
        return vectors

    info = EmbedderInfo(
        label='tokenlearn static model (offline)',
        dimensions=STATIC_EMBEDDER_DIMENSIONS,
        supports=EmbedderSupports(input=['text']),
    )
    return _define(ai, name, encode, info)
