"""One JS JSON writer and document id for every store (local, Chroma, Pinecone, pgvector)."""

from __future__ import annotations

import pytest
from genkit import Document

from genkit_parity._native import js_json_text
from genkit_parity._vectordocs import doc_id, js_json


def test_numbers_as_json_stringify_writes_them():
    assert (
        js_json_text('[1.0, 1e-7, 1e21, 0.000001, 1.5, -0.0, "café"]')
        == '[1,1e-7,1e+21,0.000001,1.5,0,"café"]'
    )
    assert js_json({'b': 2.0, 'a': [True, None]}) == '{"b":2,"a":[true,null]}'


def test_document_ids_are_js_md5s():
    # Values verified against ts-md5 (spec rag.md §2.1).
    assert doc_id(Document.from_text('aaa', {'src': 1})) == '44215990ebe501ee3dee68fac034f131'
    assert doc_id(Document.from_text('bbb')) == '615810d9e26e082236497e14a564bc47'
    assert doc_id(Document.from_text('aaa', {'src': 2.0})) == 'cb15353ccfc1c8ed5e1a8ca27ab7705f'


def test_bad_json_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match='not valid JSON'):
        js_json_text('{bad')
    with pytest.raises(ValueError, match='Out of range float'):
        js_json(float('nan'))
