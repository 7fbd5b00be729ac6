"""JSON conversion shared by stores and sessions: messages and state to and from JSON text."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from genkit import Message

__all__ = ['compact_json', 'dumps_value', 'message_from_data', 'message_to_data', 'message_to_json']


#: Compact JSON text of plain JSON values (``json.dumps(v, ensure_ascii=False,
#: separators=(',', ':'))``), with one encoder for every call: ``json.dumps`` with
#: non-default arguments builds a new encoder each time, which shows per document.
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(',', ':')).encode


def _default(value: Any) -> Any:
    dump = getattr(value, 'model_dump', None)
    if callable(dump):
        return dump(mode='json', by_alias=True, exclude_none=True)
    raise TypeError(f'{type(value).__name__} is not JSON-serializable')


def dumps_value(value: Any, *, what: str) -> str:
    """Serialise any JSON-able value (pydantic models included); TypeError names ``what``."""
    try:
        # NaN and infinity have no JSON form: refused here, not stored as text no parser reads.
        return json.dumps(value, default=_default, ensure_ascii=False, separators=(',', ':'), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f'{what} must be JSON-serializable: {error}') from None


def message_to_json(message: Message | dict[str, Any]) -> str:
    """One message as `MessageData` JSON text."""
    if isinstance(message, Message):
        return message.model_dump_json(by_alias=True, exclude_none=True)
    return dumps_value(Message.model_validate(message), what='message')


def message_to_data(message: Message) -> dict[str, Any]:
    """One message as plain `MessageData` (JSON types only)."""
    data: dict[str, Any] = message.model_dump(mode='json', by_alias=True, exclude_none=True)
    return data


def message_from_data(data: Any) -> Message:
    """A genkit Message from `MessageData` (or a Message, returned as is)."""
    if isinstance(data, Message):
        return data
    return Message.model_validate(data)


def coerce_messages(messages: Iterable[Any], *, what: str) -> list[Message]:
    """Messages given as Message objects or MessageData dicts; TypeError names ``what``."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Iterable):
        raise TypeError(f'{what} must be a list of messages, not {type(messages).__name__}')
    result = []
    for index, item in enumerate(messages):
        try:
            result.append(message_from_data(item))
        except (ValueError, TypeError) as error:
            raise TypeError(f'{what}[{index}] is not a valid message: {error}') from None
    return result
