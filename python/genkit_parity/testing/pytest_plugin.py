"""pytest fixtures for genkit-parity users (registered through the ``pytest11`` entry point).

Fixtures:

- ``ai``: a fresh :class:`genkit_parity.Genkit` whose default model is ``echoModel``,
  with ``echoModel`` and ``programmableModel`` defined.
- ``programmable_model``: the ``programmableModel`` of that ``ai`` (script it with
  ``respond_with``).
- ``echo_model``: the ``echoModel`` action.

A project fixture of the same name takes precedence, as pytest always does.
"""

from __future__ import annotations

from typing import Any

import pytest

from .models import ProgrammableModel, define_echo_model, define_programmable_model


@pytest.fixture
def _genkit_parity_models() -> tuple[Any, Any, ProgrammableModel]:
    from genkit_parity import Genkit

    ai = Genkit(model='echoModel')
    echo = define_echo_model(ai)
    programmable = define_programmable_model(ai)
    return ai, echo, programmable


@pytest.fixture
def ai(_genkit_parity_models: tuple[Any, Any, ProgrammableModel]) -> Any:
    """A genkit_parity.Genkit with echoModel (default) and programmableModel."""
    return _genkit_parity_models[0]


@pytest.fixture
def echo_model(_genkit_parity_models: tuple[Any, Any, ProgrammableModel]) -> Any:
    """The echoModel action of the ``ai`` fixture."""
    return _genkit_parity_models[1]


@pytest.fixture
def programmable_model(_genkit_parity_models: tuple[Any, Any, ProgrammableModel]) -> ProgrammableModel:
    """The programmableModel of the ``ai`` fixture."""
    return _genkit_parity_models[2]
