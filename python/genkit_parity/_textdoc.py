"""Text documents built as pydantic's ``model_construct`` builds models, without validation.

The instance's field dict and its three pydantic slots are set directly: a str text part
and a JSON object's dict (str keys) are what validation accepts unchanged. Validating was
most of a retriever's own time (~30 us a document, ten a query), ``model_copy`` of blank
models ~17 us a document on the bench machine, this ~6 us; ``Document.from_text`` also
deep-copies the part it has just built. tests/test_vs_chroma.py and tests/test_rag.py check
that these are the very documents validation and ``from_text`` give.
"""

from __future__ import annotations

from typing import Any

from genkit import Document, Part
from pydantic import BaseModel

__all__ = ['text_document']

_set_slot = object.__setattr__
_PART_FIELDS = dict(Part.model_construct().__dict__)  # every field at its default
_VALIDATED_PART = frozenset({'text'})  # what validating {'text': ...} sets
_FROM_TEXT_PART = frozenset({'text', 'metadata'})  # what Part.from_text sets
_DOCUMENT = frozenset({'content', 'metadata'})  # both ways


def _built(cls: type[BaseModel], fields: dict[str, Any], fields_set: frozenset[str]) -> Any:
    made = cls.__new__(cls)
    _set_slot(made, '__dict__', fields)
    _set_slot(made, '__pydantic_fields_set__', set(fields_set))
    _set_slot(made, '__pydantic_extra__', None)
    _set_slot(made, '__pydantic_private__', None)
    return made


def text_document(text: str, metadata: dict[str, Any] | None, *, as_from_text: bool = False) -> Document:
    """A document of one text part, as validation builds it (or ``Document.from_text``).

    Without ``as_from_text``: what validating ``{'content': [{'text': text}], 'metadata': ...}``
    gives; with it, what ``Document.from_text(text, metadata)`` gives. ``text`` must be a
    str and ``metadata`` None or a plain dict, which is taken over, not copied.
    """
    part = _built(Part, {**_PART_FIELDS, 'text': text}, _FROM_TEXT_PART if as_from_text else _VALIDATED_PART)
    made: Document = _built(Document, {'content': [part], 'metadata': metadata}, _DOCUMENT)
    return made
