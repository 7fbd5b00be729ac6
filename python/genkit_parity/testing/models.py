"""Test models that need no API key: an echo model and a programmable (scripted) model.

Both follow JS Genkit's test helpers (``defineEchoModel``, ``mockModel``) so the JS
acceptance scenarios translate one to one.
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping, Sequence
from typing import Any

import genkit
from genkit import ActionRunContext, Message, Part, ToolRequest
from genkit.model import FinishReason, ModelInfo, ModelRequest, ModelResponse, ModelResponseChunk, Supports

from .. import _compat
from ..schemas import generation_common_config_schema

__all__ = ['ProgrammableModel', 'Respond', 'define_echo_model', 'define_programmable_model', 'request_text']

_SUPPORTS = Supports(multiturn=True, media=True, tools=True, system_role=True, tool_choice=True)

#: What a programmable model can be told to answer (see :class:`ProgrammableModel`).
Respond = Any


def _role(message: Message) -> str:
    role = message.role
    return str(getattr(role, 'value', role))


def _part_texts(message: Message) -> str:
    # JS `content.map(c => c.text).join()`: missing text joins as an empty string.
    return ','.join(part.text or '' for part in message.content)


def request_text(request: ModelRequest[Any]) -> str:
    """The echo model's rendering of a request's messages (JS ``defineEchoModel``)."""
    return ','.join(
        ('' if _role(m) in ('user', 'model') else f'{_role(m)}: ') + _part_texts(m) for m in request.messages
    )


def _config_json(config: Any) -> str:
    if config is None:
        return 'undefined'
    if hasattr(config, 'model_dump'):
        config = config.model_dump(exclude_none=True, by_alias=True)
    return json.dumps(config, separators=(',', ':'))


def define_echo_model(ai: genkit.Genkit, name: str = 'echoModel') -> genkit.Action:
    """Define JS's echo model: replies ``'Echo: <messages>'`` and ``'; config: <json>'``.

    When streaming, it first emits the chunks ``'3'``, ``'2'``, ``'1'``.

    Example:
        >>> # define_echo_model(ai); (await ai.generate(model='echoModel', prompt='hi')).text
        >>> # 'Echo: hi; config: {}'

    """

    async def echo(request: ModelRequest[Any], ctx: ActionRunContext) -> ModelResponse[Any]:
        if ctx.is_streaming:
            for text in ('3', '2', '1'):
                ctx.send_chunk(ModelResponseChunk(content=[Part(text=text)]))
        parts = [
            Part(text='Echo: ' + request_text(request)),
            Part(text='; config: ' + _config_json(request.config)),
        ]
        return ModelResponse(message=Message(role='model', content=parts), finish_reason=FinishReason('stop'))

    action = ai.define_model(name, echo, info=ModelInfo(label=name, supports=_SUPPORTS))
    _compat.set_model_custom_options(action, generation_common_config_schema())
    return action


class ProgrammableModel:
    """A scripted model (JS ``mockModel``): each call consumes the next queued answer.

    An answer is one of:

    - a ``str``: a text reply;
    - a dict with any of ``text``, ``content`` (Parts), ``tool_requests``
      (``[{'name', 'input', 'ref'}]``), ``chunks`` (streamed first: strs or Part lists)
      and ``finish_reason``;
    - a ``ModelResponse``, returned as is;
    - an exception instance, raised on its turn;
    - a callable ``(request, send_chunk) -> answer`` (sync or async).

    Given a list, answers are consumed one per call and the last one repeats.
    ``requests``, ``last_request`` and ``request_count`` record what the model saw.
    """

    def __init__(self, respond: Respond | Sequence[Respond] = '') -> None:
        """Create a model answering ``respond``."""
        self._original = respond
        self.requests: list[ModelRequest[Any]] = []
        self._queue: list[Respond] = []
        self.respond_with(respond)

    @property
    def request_count(self) -> int:
        """How many requests the model has served."""
        return len(self.requests)

    @property
    def last_request(self) -> ModelRequest[Any] | None:
        """A deep copy of the latest request, or None."""
        return self.requests[-1] if self.requests else None

    @property
    def last_request_text(self) -> str:
        """The latest request's messages as the echo model renders them."""
        return request_text(self.last_request) if self.last_request else ''

    def respond_with(self, respond: Respond | Sequence[Respond]) -> None:
        """Replace the script; keeps the request history."""
        self._queue = list(respond) if isinstance(respond, list) else [respond]
        if not self._queue:
            self._queue = ['']

    def reset(self) -> None:
        """Clear the history and re-arm the original script."""
        self.requests.clear()
        self.respond_with(self._original)

    def _next(self) -> Respond:
        return self._queue.pop(0) if len(self._queue) > 1 else self._queue[0]

    async def __call__(self, request: ModelRequest[Any], ctx: ActionRunContext) -> ModelResponse[Any]:
        """The model function registered with Genkit."""
        self.requests.append(copy.deepcopy(request))
        answer = self._next()

        def send_chunk(chunk: str | Sequence[Part] | ModelResponseChunk[Any]) -> None:
            if ctx.is_streaming:
                ctx.send_chunk(_to_chunk(chunk))

        if callable(answer) and not isinstance(answer, type):
            answer = answer(request, send_chunk)
            if inspect.isawaitable(answer):
                answer = await answer
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, ModelResponse):
            return answer
        if isinstance(answer, str):
            answer = {'text': answer}
        if not isinstance(answer, Mapping):
            raise TypeError(f'programmable model: cannot answer with {type(answer).__name__}')
        for chunk in answer.get('chunks') or ():
            send_chunk(chunk)
        return _to_response(answer)


def _to_chunk(chunk: str | Sequence[Part] | ModelResponseChunk[Any]) -> ModelResponseChunk[Any]:
    if isinstance(chunk, ModelResponseChunk):
        return chunk
    if isinstance(chunk, str):
        return ModelResponseChunk(content=[Part(text=chunk)])
    return ModelResponseChunk(content=list(chunk))


def _to_response(answer: Mapping[str, Any]) -> ModelResponse[Any]:
    unknown = set(answer) - {'text', 'content', 'tool_requests', 'chunks', 'finish_reason'}
    if unknown:
        raise TypeError(f'programmable model: unknown answer keys {sorted(unknown)}')
    parts: list[Part] = list(answer.get('content') or [])
    if answer.get('text') is not None:
        parts.append(Part(text=answer['text']))
    for request in answer.get('tool_requests') or ():
        parts.append(
            Part(
                tool_request=ToolRequest(
                    name=request['name'], input=request.get('input'), ref=request.get('ref')
                )
            )
        )
    return ModelResponse(
        message=Message(role='model', content=parts),
        finish_reason=FinishReason(answer.get('finish_reason', 'stop')),
    )


def define_programmable_model(
    ai: genkit.Genkit,
    name: str = 'programmableModel',
    *,
    respond: Respond | Sequence[Respond] = '',
) -> ProgrammableModel:
    """Define a :class:`ProgrammableModel` named ``name`` on ``ai`` and return it.

    Example:
        >>> # pm = define_programmable_model(ai, respond=['first', 'second'])
        >>> # (await ai.generate(model='programmableModel', prompt='x')).text -> 'first'

    """
    model = ProgrammableModel(respond)

    # genkit requires a coroutine function, not an awaitable-returning object.
    async def model_fn(request: ModelRequest[Any], ctx: ActionRunContext) -> ModelResponse[Any]:
        return await model(request, ctx)

    action = ai.define_model(name, model_fn, info=ModelInfo(label=name, supports=_SUPPORTS))
    _compat.set_model_custom_options(action, generation_common_config_schema())
    return model
