"""Fill a Pydantic model from a half-arrived JSON object, as genkit 0.12 does, without its cost.

genkit's ``chunk.output`` turns each chunk's partial dict into the ``output_schema`` model
with missing fields None and no validation (``genkit._core._partial.construct_partial``). It
calls ``typing.get_type_hints`` for every field of every nested object on every chunk, which
costs more than parsing. This module gives the same result with each model's field plan
(keys to look up, resolved annotations) worked out once per class.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, ForwardRef, Union, get_args, get_origin, get_type_hints

from pydantic import AliasChoices, BaseModel, RootModel

__all__ = ['Memo', 'construct_partial', 'is_partial_model']

_SEQUENCES = (list, tuple, Sequence, MutableSequence)
_MAPPINGS = (dict, Mapping, MutableMapping)


def is_partial_model(annotation: Any) -> bool:
    """A model class genkit fills field by field (not BaseModel itself, not a RootModel)."""
    return (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and annotation is not BaseModel
        and not issubclass(annotation, RootModel)
    )


@dataclass(frozen=True)
class _Field:
    name: str
    keys: tuple[str, ...]  # the field name, then its aliases, first match wins
    annotation: Any


_plans: weakref.WeakKeyDictionary[type, tuple[_Field, ...]] = weakref.WeakKeyDictionary()
_plans_lock = threading.Lock()


def _keys(name: str, info: Any) -> tuple[str, ...]:
    keys = [name]
    if info.alias is not None:
        keys.append(info.alias)
    alias = info.validation_alias
    if isinstance(alias, str):
        keys.append(alias)
    elif isinstance(alias, AliasChoices):
        keys.extend(choice for choice in alias.choices if isinstance(choice, str))
    return tuple(dict.fromkeys(keys))


def _plan(model: type[BaseModel]) -> tuple[_Field, ...]:
    with _plans_lock:
        plan = _plans.get(model)
    if plan is not None:
        return plan
    try:
        hints: dict[str, Any] | None = get_type_hints(model, include_extras=True)
    except Exception:
        hints = None
    plan = tuple(
        _Field(
            name=name,
            keys=_keys(name, info),
            annotation=object
            if info.annotation is None
            else (info.annotation if hints is None else hints.get(name, info.annotation)),
        )
        for name, info in model.model_fields.items()
    )
    if hints is not None:  # a failed lookup may succeed later (genkit retries it every time)
        with _plans_lock:
            _plans[model] = plan
    return plan


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        args = get_args(annotation)
        annotation = args[0] if args else annotation
    return annotation


def _resolve(annotation: Any, owner: type[BaseModel]) -> Any:
    """Annotations written as strings name the owner itself or a model in its module."""
    annotation = _unwrap(annotation)
    if isinstance(annotation, ForwardRef):
        annotation = annotation.__forward_arg__
    if not isinstance(annotation, str):
        return annotation
    if annotation == owner.__name__ and is_partial_model(owner):
        return owner
    module = sys.modules.get(owner.__module__)
    found = getattr(module, annotation, None) if module is not None else None
    return found if is_partial_model(found) else annotation


def _overlap(model: type[BaseModel], data: dict[str, Any]) -> int:
    return len({key for field in _plan(model) for key in field.keys} & data.keys())


def _pick_model(annotation: Any, data: dict[str, Any]) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    candidates = [member for member in members if is_partial_model(member)]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    best: type[BaseModel] = max(candidates, key=lambda model: _overlap(model, data))  # first of equals
    return best


class Memo:
    """Partial results already built for container objects, kept for one chunk at a time.

    A stream hands out the same objects for finished members from chunk to chunk, so their
    models are built once. Entries not used while reading the latest chunk (the previous
    chunks' open containers, which are new objects every time) are dropped, so memory stays
    proportional to the document, not to the number of chunks.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._previous: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._current: dict[tuple[int, int], tuple[Any, Any]] = {}

    def next_chunk(self) -> None:
        """Keep only what the chunk just read used."""
        self._previous, self._current = self._current, {}

    def clear(self) -> None:
        """Forget everything (the stream restarted)."""
        self._previous, self._current = {}, {}

    def get(self, raw: Any, kind: Any) -> tuple[bool, Any]:
        """``(True, result)`` for ``raw`` (the very object) read as ``kind``, else ``(False, None)``."""
        key = (id(raw), id(kind))
        hit = self._current.get(key) or self._previous.get(key)
        if hit is None or hit[0] is not raw:  # (an id can be reused once its object is gone)
            return False, None
        self._current[key] = hit
        return True, hit[1]

    def put(self, raw: Any, kind: Any, result: Any) -> None:
        """Remember ``result`` for ``raw`` read as ``kind`` (holding ``raw`` keeps its id unique)."""
        self._current[(id(raw), id(kind))] = (raw, result)


def _coerce(annotation: Any, raw: Any, owner: type[BaseModel], memo: Memo | None) -> Any:
    if raw is None:
        return None
    if memo is not None and isinstance(raw, (dict, list)):
        found, result = memo.get(raw, annotation)
        if not found:
            result = _coerce_container(annotation, raw, owner, memo)
            memo.put(raw, annotation, result)
        return result
    return _coerce_container(annotation, raw, owner, memo)


def _coerce_container(annotation: Any, raw: Any, owner: type[BaseModel], memo: Memo | None) -> Any:
    annotation = _resolve(annotation, owner)
    if isinstance(raw, dict):
        model = _pick_model(annotation, raw)
        if model is not None:
            return construct_partial(model, raw, memo)
        if get_origin(annotation) in _MAPPINGS:
            args = get_args(annotation)
            if len(args) == 2:
                return {key: _coerce(args[1], value, owner, memo) for key, value in raw.items()}
        return raw
    if isinstance(raw, list) and get_origin(annotation) in _SEQUENCES:
        inners = tuple(arg for arg in get_args(annotation) if arg is not Ellipsis)
        if len(inners) == 1:
            return [_coerce(inners[0], item, owner, memo) for item in raw]
        if inners:
            last = len(inners) - 1
            return [_coerce(inners[min(i, last)], item, owner, memo) for i, item in enumerate(raw)]
    return raw


def construct_partial(model: type[BaseModel], data: dict[str, Any], memo: Memo | None = None) -> BaseModel:
    """``model`` built from a partial dict without validation: missing fields are None.

    With ``memo``, a container object seen before (the same object, as a stream's finished
    members are from chunk to chunk) gives the same result without being rebuilt.
    """
    if memo is not None:
        found, built = memo.get(data, model)
        if found:
            return built  # type: ignore[no-any-return]
    values: dict[str, Any] = {}
    for field in _plan(model):
        for name in field.keys:
            if name in data:
                values[field.name] = _coerce(field.annotation, data[name], model, memo)
                break
        else:
            values[field.name] = None
    result = model.model_construct(**values)
    if memo is not None:
        memo.put(data, model, result)
    return result
