"""Model config schemas for the Dev UI: the Rust definitions, the normaliser, and what the
running reflection server lists for each model."""

from __future__ import annotations

import json
from pathlib import Path

import genkit
import pytest
from pydantic import BaseModel, ConfigDict, Field

from genkit_parity import Genkit, extend
from genkit_parity.schemas import (
    dev_ui_schema,
    gemini_config_schema,
    generation_common_config_schema,
    validate_json_schema,
)

from ._reflection import get, serve_reflection

DRAFT_07 = 'http://json-schema.org/draft-07/schema#'


def assert_js_shaped(schema: dict[str, object]) -> None:
    """Root-only `$schema`, last; objects say additionalProperties; no titles anywhere."""
    assert list(schema)[-1] == '$schema' and schema['$schema'] == DRAFT_07
    text = json.dumps(schema)
    assert text.count('$schema') == 1 and '"title"' not in text and '$defs' not in text

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get('type') == 'object':
                assert 'additionalProperties' in node, node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


def test_common_config_matches_js() -> None:
    schema = generation_common_config_schema()
    assert_js_shaped(schema)
    assert list(schema['properties']) == [
        'version',
        'temperature',
        'maxOutputTokens',
        'topK',
        'topP',
        'stopSequences',
        'apiKey',
    ]
    assert schema['additionalProperties'] is True
    assert schema['properties']['stopSequences'] == {
        'type': 'array',
        'items': {'type': 'string'},
        'maxItems': 5,
        'description': 'Set of character sequences (up to 5) that will stop output generation.',
    }


def test_gemini_config_extends_the_common_one() -> None:
    schema = gemini_config_schema()
    assert_js_shaped(schema)
    assert set(generation_common_config_schema()['properties']) <= set(schema['properties'])
    safety = schema['properties']['safetySettings']
    assert safety['x-genkit-ui-widget'] == 'safety-settings'
    assert 'BLOCK_ONLY_HIGH' in safety['items']['properties']['threshold']['enum']


class Mode(BaseModel):
    name: str


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra='forbid')

    temperature: float | None = Field(default=None, description='How random')
    count: int = Field(default=3, ge=1, le=10)
    prefix: str = 'echo: '
    mode: Mode | None = None
    tags: list[str] = []


def test_pydantic_config_is_normalised() -> None:
    schema = dev_ui_schema(EchoConfig)
    assert_js_shaped(schema)
    props = schema['properties']
    assert props['temperature'] == {'type': 'number', 'description': 'How random'}
    assert props['count'] == {'type': 'integer', 'maximum': 10, 'minimum': 1, 'default': 3}
    assert props['mode']['properties'] == {'name': {'type': 'string'}}
    assert schema['additionalProperties'] is False  # extra='forbid' stays strict
    with pytest.raises(TypeError, match='pydantic model class or a JSON Schema dict'):
        dev_ui_schema('EchoConfig')  # type: ignore[arg-type]


def test_json_schema_validation_names_the_problem() -> None:
    validate_json_schema({'type': 'object', 'properties': {'a': {'type': 'string'}}})
    with pytest.raises(ValueError, match=r'invalid JSON Schema at properties/a/type'):
        validate_json_schema({'type': 'object', 'properties': {'a': {'type': 'strin'}}})
    with pytest.raises(TypeError, match='must be a dict'):
        validate_json_schema('{}')


def test_define_json_schema_validates_then_registers() -> None:
    ai = Genkit()
    schema = {'type': 'object', 'properties': {'output': {'type': 'string'}}, 'required': ['output']}
    assert ai.define_json_schema('Out', schema) is schema
    assert ai.registry.lookup_schema('Out') == schema
    with pytest.raises(ValueError, match='invalid JSON Schema'):
        ai.define_json_schema('Bad', {'type': 12})
    with pytest.raises(ValueError, match='already registered'):
        ai.define_json_schema('Out', schema)
    with pytest.raises(TypeError, match='non-empty str'):
        ai.define_json_schema('  ', schema)
    with pytest.raises(TypeError, match='must be a dict'):
        ai.define_json_schema('List', [])  # type: ignore[arg-type]


def test_models_list_their_config_schema_in_the_reflection_api(tmp_path: Path) -> None:
    app = """
        from pydantic import BaseModel, Field
        from genkit.model import ModelResponse
        from genkit_parity import Genkit
        from genkit_parity.testing.models import define_echo_model, define_programmable_model

        class EchoConfig(BaseModel):
            temperature: float | None = Field(default=None, description='How random')
            prefix: str = 'echo: '

        ai = Genkit(js_config_schemas=True)
        define_echo_model(ai)
        define_programmable_model(ai)

        async def custom(request, ctx):
            return ModelResponse(message={'role': 'model', 'content': [{'text': 'x'}]})

        ai.define_model('customModel', custom, config_schema=EchoConfig)
        ai.define_model('plainModel', custom)

        async def start(request, ctx):
            return {'id': 'op1'}

        async def check(op, ctx):
            return op

        ai.define_background_model('slowModel', start=start, check=check)
    """
    with serve_reflection(app, tmp_path) as url:
        actions = get(f'{url}/api/actions')
    assert isinstance(actions, dict)
    assert 'customOptions' not in actions['/model/plainModel']['metadata']['model']  # as in JS
    for key in (
        '/model/echoModel',
        '/model/programmableModel',
        '/background-model/slowModel',
    ):
        custom = actions[key]['metadata']['model']['customOptions']
        assert_js_shaped(custom)
        assert custom == generation_common_config_schema(), key
    custom = actions['/model/customModel']['metadata']['model']['customOptions']
    assert_js_shaped(custom)
    assert custom['properties'] == {
        'temperature': {'type': 'number', 'description': 'How random'},
        'prefix': {'type': 'string', 'default': 'echo: '},
    }


def test_config_schemas_are_genkits_unless_js_config_schemas() -> None:
    class Config(BaseModel):
        temperature: float | None = None

    async def fn(request, ctx):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    async def start(request, ctx):  # type: ignore[no-untyped-def]
        return {'id': 'op1'}

    def options(ai: Genkit) -> tuple[object, object, object]:
        model = ai.define_model('m', fn, config_schema=Config).metadata['model']
        bg = ai.define_background_model('bg', start=start, check=start, config_schema=Config)
        plain_bg = ai.define_background_model('plain-bg', start=start, check=start)
        return (
            model['customOptions'],
            bg.start_action.metadata['model']['customOptions'],
            plain_bg.start_action.metadata['model'].get('customOptions'),
        )

    genkits = genkit.Genkit().define_model('m', fn, config_schema=Config).metadata['model']['customOptions']
    assert options(Genkit()) == (genkits, genkits, None)  # genkit's raw form, as genkit lists it
    js_model, js_bg, js_plain = options(extend(genkit.Genkit(), js_config_schemas=True))
    assert js_model == js_bg == dev_ui_schema(Config) != genkits
    assert js_plain == generation_common_config_schema()


def test_non_pydantic_config_classes_are_left_to_genkit() -> None:
    import dataclasses

    @dataclasses.dataclass
    class DataConfig:
        temperature: float = 0.5

    async def fn(request, ctx):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    action = Genkit().define_model('dataModel', fn, config_schema=DataConfig)
    assert action.name == 'dataModel'


def test_plain_genkit_models_keep_genkits_schema_until_extended() -> None:
    plain = genkit.Genkit()

    class Config(BaseModel):
        temperature: float | None = None

    async def fn(request, ctx):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    action = plain.define_model('m', fn, config_schema=Config)
    assert 'title' in json.dumps(action.metadata['model']['customOptions'])  # genkit's raw form
