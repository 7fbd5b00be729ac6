"""Testing helpers: models that need no API key, and a pytest plugin.

``define_echo_model`` and ``define_programmable_model`` work on any ``genkit.Genkit``, and so
do the embedders ``define_toy_embedder`` (letter counts, exact) and ``define_static_embedder``
(a real offline model).
The pytest plugin (installed with the package) provides the fixtures ``ai`` (a
``genkit_parity.Genkit`` with both models, ``echoModel`` as default), ``echo_model`` and
``programmable_model``.
"""

from __future__ import annotations

from .embedders import define_static_embedder, define_toy_embedder
from .models import ProgrammableModel, Respond, define_echo_model, define_programmable_model, request_text

__all__ = [
    'ProgrammableModel',
    'Respond',
    'define_echo_model',
    'define_programmable_model',
    'define_static_embedder',
    'define_toy_embedder',
    'request_text',
]
