"""JSON schemas and option validation for retrievers, indexers and rerankers (JS's shapes).

JS lists ``{query: DocumentData, options?: <config schema>}`` as a retriever's input schema and
``customOptions`` (the config schema alone) in its metadata, all in zod's draft-07 form; the
helpers here build the same from a Pydantic class or a JSON Schema dict, and validate a
caller's options against it with JS's error text (``Schema validation failed. Parse Errors:``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from genkit import GenkitError
from genkit._core._typing import DocumentData
from jsonschema.validators import validator_for  # type: ignore[import-untyped]
from pydantic import BaseModel, ValidationError

from . import schemas

__all__ = [
    'ConfigSchema',
    'check_config_schema',
    'custom_options',
    'document_schema',
    'request_schema',
    'validate_options',
    'void_schema',
]

DRAFT_07 = 'http://json-schema.org/draft-07/schema#'

#: What ``config_schema=`` accepts: a Pydantic model class or a JSON Schema dict.
ConfigSchema = type[BaseModel] | dict[str, Any]


def check_config_schema(config_schema: object) -> None:
    """Raise ``TypeError``/``ValueError`` when ``config_schema`` is neither accepted form."""
    if config_schema is None:
        return
    if isinstance(config_schema, type) and issubclass(config_schema, BaseModel):
        return
    if isinstance(config_schema, dict):
        schemas.validate_json_schema(config_schema)
        return
    kind = type(config_schema).__name__
    raise TypeError(f'config_schema must be a pydantic model class or a JSON Schema dict, not {kind}')


def custom_options(config_schema: ConfigSchema | None) -> dict[str, Any] | None:
    """The ``customOptions`` JS lists for a config schema (None when there is none)."""
    if config_schema is None:
        return None
    return schemas.dev_ui_schema(config_schema)


def _without_root_keyword(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != '$schema'}


@functools.cache
def document_schema() -> dict[str, Any]:
    """``DocumentData`` as a nested draft-07 schema (no ``$schema`` keyword)."""
    return _without_root_keyword(schemas.dev_ui_schema(DocumentData))


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        'type': 'object',
        'properties': properties,
        'required': required,
        'additionalProperties': True,
        '$schema': DRAFT_07,
    }


def request_schema(
    config_schema: ConfigSchema | None, *, with_documents: bool, with_query: bool
) -> dict[str, Any]:
    """The input schema of a retriever (query), indexer (documents) or reranker (both)."""
    options = _without_root_keyword(custom_options(config_schema) or {})
    properties: dict[str, Any] = {}
    required: list[str] = []
    if with_query:
        properties['query'] = document_schema()
        required.append('query')
    if with_documents:
        properties['documents'] = {'type': 'array', 'items': document_schema()}
        required.append('documents')
    properties['options'] = options
    return _object(properties, required)


def documents_schema(*, ranked: bool) -> dict[str, Any]:
    """The output schema ``{documents: [...]}``; ranked documents require ``metadata.score``."""
    item = dict(document_schema())
    if ranked:
        item['properties'] = {
            **item.get('properties', {}),
            'metadata': {
                'type': 'object',
                'properties': {'score': {'type': 'number'}},
                'required': ['score'],
                'additionalProperties': True,
            },
        }
        item['required'] = ['content', 'metadata']
    return _object({'documents': {'type': 'array', 'items': item}}, ['documents'])


def void_schema() -> dict[str, Any]:
    """JS's output schema for ``z.void()`` (an indexer returns nothing)."""
    return {'$schema': DRAFT_07}


def schema_error(problems: list[str], provided: object) -> GenkitError:
    """JS's validation error: ``INVALID_ARGUMENT: Schema validation failed. Parse Errors: ...``."""
    try:
        data = json.dumps(provided, indent=2, default=str)
    except (TypeError, ValueError):
        data = repr(provided)
    lines = '\n'.join(f'- {problem}' for problem in problems)
    return GenkitError(
        status='INVALID_ARGUMENT',
        message=f'Schema validation failed. Parse Errors:\n\n{lines}\n\nProvided data:\n\n{data}',
    )


def _pydantic_problems(error: ValidationError, prefix: str) -> list[str]:
    problems = []
    for item in error.errors():
        where = '.'.join([prefix, *(str(part) for part in item['loc'])])
        problems.append(f'{where}: {item["msg"]}')
    return problems


def validate_options(config_schema: ConfigSchema | None, options: Any) -> Any:
    """``options`` checked against ``config_schema``; what the action's function receives.

    A Pydantic class gives an instance of it (a ``dict`` or an instance is accepted); a JSON
    Schema dict checks and passes the value as given; no schema passes anything through.
    ``None`` stays ``None`` (options are optional, as in JS).
    """
    if config_schema is None or options is None:
        return options
    if isinstance(config_schema, dict):
        validator = validator_for(config_schema)(config_schema)
        problems = [
            f'options{"".join(f".{p}" for p in err.absolute_path)}: {err.message}'
            for err in validator.iter_errors(options)
        ]
        if problems:
            raise schema_error(problems, options)
        return options
    if isinstance(options, config_schema):
        return options
    if isinstance(options, BaseModel):
        options = options.model_dump(by_alias=True, exclude_none=True)
    try:
        return config_schema.model_validate(options)
    except ValidationError as error:
        raise schema_error(_pydantic_problems(error, 'options'), options) from None


def options_json(options: Any) -> Any:
    """Options as plain JSON data for an action's input (and its trace)."""
    if isinstance(options, BaseModel):
        return options.model_dump(by_alias=True, exclude_none=True)
    return options
