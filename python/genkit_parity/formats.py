"""Streaming structured output at linear cost, for genkit's json, array and jsonl formats.

The formats here are genkit's, backed by the Rust incremental parser.

genkit 0.12 re-reads the whole accumulated reply on every streamed chunk (a json5 attempt, a
character scan, then ``partial_json_parser``), so reading ``chunk.output`` on every chunk is
quadratic in the length of the reply. The formats here keep one parser per ``generate``
call: a chunk that continues the stream costs time proportional to its own text (plus
building the value handed back). Results are genkit's, chunk by chunk: anything outside strict
JSON (single quotes, comments, trailing commas, a bare scalar, ...) is passed to genkit's own
pure-Python functions, so it reads exactly as before, at genkit's speed.

``genkit_parity.Genkit()`` and ``extend(ai)`` install these formats in place of genkit's
built-in ones; ``Genkit(fast_formats=False)``, ``extend(ai, fast_formats=False)`` or
:func:`use_fast_formats` ``(ai, False)`` keep (or restore) genkit's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import genkit
from genkit.model import ModelResponseChunk
from pydantic import RootModel

from . import _compat
from ._native import ArrayItemsStream, JsonStream, parse_strict_json
from ._partial_model import Memo, construct_partial

__all__ = [
    'FastArrayFormat',
    'FastJsonFormat',
    'FastJsonlFormat',
    'extract_json',
    'raise_for_invalid_output',
    'use_fast_formats',
]

# Codes returned by the native parsers (see src/partial_json/py.rs).
# genkit's class as imported, kept even if an app (or a test harness) rebinds genkit.Genkit.
_GENKIT_CLASS = genkit.Genkit

_VALUE = 0
_ASK_GENKIT = 1
_UNFINISHED = 2


def extract_json(text: str, throw_on_bad_json: bool = True) -> Any:
    r"""Genkit's ``extract_json``, read by the Rust parser (same results, same errors).

    Args:
        text: model output that may wrap JSON in prose or a code fence.
        throw_on_bad_json: raise ``ValueError`` when no JSON can be read (else return None).

    Example:
        >>> extract_json('Here you go: ```json\\n{"a": [1, 2')
        {'a': [1, 2]}

    """
    if not isinstance(text, str):
        raise TypeError(f'text must be a str, not {type(text).__name__}')
    state, value = JsonStream().push(text)
    if state == _ASK_GENKIT or (value is None and throw_on_bad_json):
        # genkit decides json5 forms and raises its own error for text without JSON.
        return _compat.genkit_extract_json(text, throw_on_bad_json=throw_on_bad_json)
    return value


def _read_line(text: str) -> Any:
    """A jsonl line the way genkit reads it (json5): its value, or ValueError where json5 raises."""
    code, value = parse_strict_json(text)
    if code == _VALUE:
        return value
    if code == _UNFINISHED:
        raise ValueError('unfinished JSON')
    return _compat.json5_loads(text)


class _ChunkCursor:
    """Knows whether a chunk continues the text a parser has already read.

    genkit hands every chunk of one model turn its own copy of the raw chunks before it, and
    those share their ``Part`` objects with the chunks the parser saw. A chunk continues the
    stream when it comes right after the last one read (same count, same last part). Anything
    else (chunks read out of order, a new tool-loop turn) is re-read from its full text.
    """

    def __init__(self) -> None:
        self._count = 0
        self._last_part: object | None = None

    def read(self, chunk: ModelResponseChunk[Any]) -> bool:
        """Record ``chunk`` as the last one read; whether it continued the stream."""
        previous = chunk.previous_chunks
        continues = self._count > 0 and len(previous) == self._count
        if continues:
            content = previous[-1].content
            continues = bool(content) and content[-1] is self._last_part
        self._count = len(previous) + 1
        self._last_part = chunk.content[-1] if chunk.content else None
        return continues


def _previous_text(chunk: ModelResponseChunk[Any]) -> str:
    accumulated = chunk.accumulated_text
    return accumulated[: len(accumulated) - len(chunk.text)]


class _JsonChunks:
    """Chunk parser of the ``json`` format: ``extract_json(accumulated, throw_on_bad_json=False)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursor = _ChunkCursor()
        self._stream = JsonStream()
        self._models = Memo()

    def __call__(self, chunk: ModelResponseChunk[Any]) -> Any:
        with self._lock:
            if self._cursor.read(chunk):
                delta = chunk.text
            else:
                self._stream = JsonStream()
                self._models.clear()
                delta = chunk.accumulated_text
            state, value = self._stream.push(delta)
            if state == _ASK_GENKIT:
                value = _compat.genkit_extract_json(chunk.accumulated_text, throw_on_bad_json=False)
            return self._as_schema(chunk, value)

    def _as_schema(self, chunk: ModelResponseChunk[Any], value: Any) -> Any:
        """The partial model genkit's ``chunk.output`` would build (it then keeps ours as is)."""
        schema_type = chunk.schema_type
        if schema_type is not None and isinstance(value, dict) and not issubclass(schema_type, RootModel):
            # Finished members are the same objects from chunk to chunk: built once.
            self._models.next_chunk()
            return construct_partial(schema_type, value, self._models)
        return value


class _ArrayChunks:
    """Chunk parser of the ``array`` format: the ``{...}`` items completed by this chunk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursor = _ChunkCursor()
        self._stream = ArrayItemsStream()

    def __call__(self, chunk: ModelResponseChunk[Any]) -> list[Any]:
        with self._lock:
            if not self._cursor.read(chunk):
                self._stream = ArrayItemsStream()
                self._stream.push(_previous_text(chunk), _compat.json5_loads)
            return self._stream.push(chunk.text, _compat.json5_loads)


class _JsonlChunks:
    """Chunk parser of the ``jsonl`` format: objects on the lines this chunk touches.

    genkit re-reads the text after the previous chunk's last newline; that tail is kept here
    instead of being cut from the accumulated text again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cursor = _ChunkCursor()
        self._tail = ''

    def __call__(self, chunk: ModelResponseChunk[Any]) -> list[Any]:
        with self._lock:
            if self._cursor.read(chunk):
                text = self._tail + chunk.text
            else:
                previous = _previous_text(chunk)
                text = previous[previous.rfind('\n') + 1 :] + chunk.text
            self._tail = text[text.rfind('\n') + 1 :]
        results = []
        for line in text.split('\n'):
            trimmed = line.strip()
            if not trimmed.startswith('{'):
                continue
            try:
                value = _read_line(trimmed)
            except ValueError:
                break  # an unfinished (or bad) line ends the chunk, as in genkit
            if value:
                results.append(value)
        return results


def _json_message(message: genkit.Message) -> Any:
    return extract_json(message.text)


def _array_message(message: genkit.Message) -> list[Any] | None:
    text = message.text
    if '[' not in text:
        return None
    try:
        parsed = extract_json(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) else None


def _jsonl_message(message: genkit.Message) -> list[Any] | None:
    items = []
    for line in message.text.split('\n'):
        trimmed = line.strip()
        if trimmed.startswith('{'):
            extracted = extract_json(trimmed, throw_on_bad_json=False)
            if extracted is not None:
                items.append(extracted)
    return items or None


def _formatter(
    base: Any, chunk_parser: Callable[[ModelResponseChunk[Any]], Any], message_parser: Callable[[Any], Any]
) -> Any:
    # genkit's own formatter supplies the instructions (and validated the schema already).
    return _compat.Formatter(
        chunk_parser=chunk_parser, message_parser=message_parser, instructions=base.instructions
    )


class FastJsonFormat(_compat.JsonFormat):
    """genkit's ``json`` format with the incremental parser (one parser per generate call)."""

    def handle(self, schema: dict[str, object] | None) -> Any:
        """A formatter for one generate call."""
        return _formatter(super().handle(schema), _JsonChunks(), _json_message)


class FastArrayFormat(_compat.ArrayFormat):
    """genkit's ``array`` format with the incremental item scanner."""

    def handle(self, schema: dict[str, object] | None) -> Any:
        """A formatter for one generate call (genkit's schema checks apply)."""
        return _formatter(super().handle(schema), _ArrayChunks(), _array_message)


class FastJsonlFormat(_compat.JsonlFormat):
    """genkit's ``jsonl`` format reading lines with the Rust parser."""

    def handle(self, schema: dict[str, object] | None) -> Any:
        """A formatter for one generate call (genkit's schema checks apply)."""
        return _formatter(super().handle(schema), _JsonlChunks(), _jsonl_message)


_FAST_FORMATS: tuple[type[Any], ...] = (FastJsonFormat, FastArrayFormat, FastJsonlFormat)
_GENKIT_FORMATS: tuple[type[Any], ...] = (_compat.JsonFormat, _compat.ArrayFormat, _compat.JsonlFormat)


def use_fast_formats(ai: genkit.Genkit, enabled: bool = True) -> None:
    """Register the fast ``json``, ``array`` and ``jsonl`` formats on ``ai`` (or genkit's own).

    ``genkit_parity.Genkit()`` and ``extend(ai)`` call this; call it with ``enabled=False`` to
    go back to genkit's pure-Python formats. Formats registered under other names are untouched.
    """
    if not isinstance(ai, _GENKIT_CLASS):
        raise TypeError(f'ai must be a genkit.Genkit instance, not {type(ai).__name__}')
    if not isinstance(enabled, bool):
        raise TypeError(f'enabled must be a bool, not {type(enabled).__name__}')
    for format_class in _FAST_FORMATS if enabled else _GENKIT_FORMATS:
        format_def = format_class()
        _compat.replace_format(ai.registry, format_def.name, format_def)


def raise_for_invalid_output(response: Any) -> None:
    """Raise as JS does when ``response``'s output did not match the requested schema.

    genkit 0.12 returns such a response with ``output`` None and ``error`` set (reason
    ``INVALID_OUTPUT``); JS throws ``INVALID_ARGUMENT: Schema validation failed`` from
    ``generate()``. Used by ``strict_output=True``.

    Raises:
        genkit.GenkitError: status ``INVALID_ARGUMENT``, with genkit's message and details.

    """
    error = getattr(response, 'error', None)
    details = getattr(error, 'details', None)
    if not isinstance(details, dict) or details.get('reason') != 'INVALID_OUTPUT':
        return
    message = str(getattr(error, 'message', 'Schema validation failed'))
    raise genkit.GenkitError(status='INVALID_ARGUMENT', message=message, details=details)
