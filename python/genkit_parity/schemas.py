"""Model config schemas for the Genkit Dev UI, in the draft-07 form JS Genkit emits.

The Dev UI renders a model's config form from ``metadata.model.customOptions``. genkit 0.12
puts a Pydantic model's raw JSON Schema there (titles, ``anyOf`` with ``null``, ``$defs``);
JS puts zod's draft-07 form. These helpers (Rust core) give the JS form:

    >>> schema = generation_common_config_schema()
    >>> list(schema['properties'])[:3]
    ['version', 'temperature', 'maxOutputTokens']
    >>> schema['$schema']
    'http://json-schema.org/draft-07/schema#'

Models defined through ``genkit_parity.Genkit`` (and its test and background models) carry
such a ``customOptions``.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import SchemaError  # type: ignore[import-untyped]
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from pydantic import BaseModel

from ._native import gemini_config_json_schema, normalize_json_schema
from ._native import generation_common_config_schema as _common

__all__ = ['dev_ui_schema', 'gemini_config_schema', 'generation_common_config_schema', 'validate_json_schema']


def generation_common_config_schema() -> dict[str, Any]:
    """Genkit's common generation config schema, as JS emits it.

    Properties: version, temperature, maxOutputTokens, topK, topP, stopSequences, apiKey.
    """
    schema: dict[str, Any] = json.loads(_common())
    return schema


def gemini_config_schema() -> dict[str, Any]:
    """A Gemini-compatible config schema.

    The common options plus safety settings, function calling, response modalities,
    thinking, code execution and search grounding.
    """
    schema: dict[str, Any] = json.loads(gemini_config_json_schema())
    return schema


def dev_ui_schema(schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    """The Dev UI form of a Pydantic model class or a JSON Schema dict.

    Raises:
        TypeError: ``schema`` is neither.

    Example:
        >>> from pydantic import BaseModel
        >>> class EchoConfig(BaseModel):
        ...     temperature: float | None = None
        >>> dev_ui_schema(EchoConfig)['properties']
        {'temperature': {'type': 'number'}}

    """
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        raw: Any = schema.model_json_schema(by_alias=True)
    elif isinstance(schema, dict):
        raw = schema
    else:
        raise TypeError(
            f'schema must be a pydantic model class or a JSON Schema dict, not {type(schema).__name__}'
        )
    normalized: dict[str, Any] = json.loads(normalize_json_schema(json.dumps(raw)))
    return normalized


def validate_json_schema(schema: Any) -> None:
    """Raise ``ValueError`` naming the problem when ``schema`` is not a valid JSON Schema."""
    if not isinstance(schema, (dict, bool)):
        raise TypeError(f'a JSON Schema must be a dict, not {type(schema).__name__}')
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as error:
        where = '/'.join(str(p) for p in error.absolute_path) or '(root)'
        raise ValueError(f'invalid JSON Schema at {where}: {error.message}') from error
