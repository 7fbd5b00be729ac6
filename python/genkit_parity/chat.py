"""Chat: multi-turn conversation on a session thread (JS Genkit 1.38 ``Chat``).

Differences from JS 1.38, on purpose (JS quirks 1-3 of the spec's Appendix A):

- per-send ``config`` (and any other per-send option) applies to that send only;
- the chat keeps the tool references it was given, so namespaced tools (``'ns/tool'``)
  and provider tools keep resolving on later sends;
- per-send ``messages`` are appended to the history instead of replacing it;
- concurrent sends on one thread are serialised in arrival order instead of racing.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any

from genkit import ExecutablePrompt, Message, Part
from genkit.model import GenerateActionOptions, ModelResponse, ModelResponseChunk

from . import _compat
from ._json import coerce_messages
from .session import MAIN_THREAD, Session, validate_thread

__all__ = ['Chat', 'ChatStreamResponse', 'GENERATE_OPTIONS']

#: Options a chat passes through to ``ai.generate`` (at creation or per send).
GENERATE_OPTIONS = frozenset(
    {
        'model',
        'system',
        'messages',
        'tools',
        'return_tool_requests',
        'tool_choice',
        'config',
        'max_turns',
        'context',
        'output_schema',
        'output_format',
        'output_content_type',
        'output_instructions',
        'output_constrained',
        'use',
        'docs',
        'resume_respond',
        'resume_restart',
        'resume_metadata',
    }
)
# Options a prompt's render() accepts, out of the above.
_RENDER_OPTIONS = frozenset(
    {
        'model',
        'config',
        'messages',
        'docs',
        'tools',
        'tool_choice',
        'return_tool_requests',
        'max_turns',
        'use',
        'context',
    }
)
_CREATE_ONLY = frozenset({'input', 'prompt'})
_SEND_ONLY = frozenset({'prompt', 'on_chunk'})

Preamble = ExecutablePrompt[Any, Any] | GenerateActionOptions


def split_chat_args(
    args: Sequence[Any], *, thread: str | None = None, preamble: Preamble | None = None
) -> tuple[str, Preamble | None]:
    """Resolve JS ``session.chat`` overloads: ``(thread?, preamble?)`` positionally or by name."""
    if len(args) > 2:
        raise TypeError(f'chat() takes at most 2 positional arguments (thread, preamble), got {len(args)}')
    rest = list(args)
    if rest and isinstance(rest[0], str):
        if thread is not None:
            raise TypeError('chat() got thread both positionally and by name')
        thread = rest.pop(0)
    if rest:
        if preamble is not None:
            raise TypeError('chat() got preamble both positionally and by name')
        preamble = rest.pop(0)
    if rest or (preamble is not None and not isinstance(preamble, (ExecutablePrompt, GenerateActionOptions))):
        given = ', '.join(type(a).__name__ for a in (*args, *([preamble] if preamble is not None else [])))
        raise TypeError(f'chat() takes (thread: str, preamble: a prompt or its rendered output), got {given}')
    return validate_thread(MAIN_THREAD if thread is None else thread), preamble


def is_preamble(message: Message) -> bool:
    """Whether a message is tagged ``metadata.preamble``."""
    return bool(message.metadata and message.metadata.get('preamble'))


def _starts_with_preamble(history: Sequence[Message], preamble: Sequence[Message]) -> bool:
    """Whether ``history`` already opens with exactly ``preamble`` (and holds no other).

    Then a chat keeps the stored messages as they are and its turn appends, instead of
    rewriting the thread with an equal preamble (which a shared store would refuse once
    another writer had saved, and which costs the whole history each time).
    """
    lead = len(preamble)
    return (
        len(history) >= lead
        and all(stored == fresh for stored, fresh in zip(history, preamble, strict=False))
        and not any(is_preamble(m) for m in history[lead:])
    )


def tag_as_preamble(messages: Sequence[Message]) -> list[Message]:
    """Copies of ``messages`` with ``metadata.preamble = True`` merged into their metadata."""
    return [m.model_copy(update={'metadata': {**(m.metadata or {}), 'preamble': True}}) for m in messages]


# Generation settings a user may pass as options; they belong in ``config=``.
_CONFIG_KEYS = frozenset(
    {
        'temperature',
        'max_output_tokens',
        'maxOutputTokens',
        'top_k',
        'topK',
        'top_p',
        'topP',
        'stop_sequences',
        'stopSequences',
        'version',
        'api_key',
        'apiKey',
    }
)


def _check_option_names(options: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in options:
        if name not in allowed:
            if name in _CONFIG_KEYS and 'config' in allowed:
                hint = f"; {name} is a model setting: pass config={{'{name}': ...}}"
            else:
                close = difflib.get_close_matches(name, sorted(allowed | _CONFIG_KEYS), n=1)
                hint = ''
                if close:
                    hint = f'; did you mean {close[0]!r}?'
                    if close[0] in _CONFIG_KEYS:
                        hint = f"; did you mean config={{'{close[0]}': ...}}?"
            raise TypeError(f'{where} got an unexpected option {name!r}{hint}')


def rendered_to_options(rendered: GenerateActionOptions) -> dict[str, Any]:
    """A prompt's rendered ``GenerateActionOptions`` as ``ai.generate`` keyword options."""
    options: dict[str, Any] = {}
    for name in (
        'model',
        'config',
        'tools',
        'tool_choice',
        'return_tool_requests',
        'max_turns',
        'docs',
        'use',
    ):
        value = getattr(rendered, name, None)
        if value is not None:
            options[name] = value
    output = rendered.output
    if output is not None:
        for source, target in (
            ('format', 'output_format'),
            ('content_type', 'output_content_type'),
            ('instructions', 'output_instructions'),
            ('json_schema', 'output_schema'),
            ('constrained', 'output_constrained'),
        ):
            value = getattr(output, source, None)
            if value is not None:
                options[target] = value
    options['messages'] = list(rendered.messages or [])
    return options


def _normalise_prompt(prompt: object) -> str | list[Part]:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, Part):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, Part) for p in prompt):
        return prompt
    raise TypeError(f'prompt must be a str, a Part or a list of Parts, not {type(prompt).__name__}')


class Chat:
    """A conversation on one thread of a :class:`Session`.

    Create with ``ai.chat(...)`` or ``session.chat(...)``; talk with :meth:`send` and
    :meth:`send_stream`. Every successful turn is persisted to the session's store before
    it returns. A failed turn changes nothing: as genkit 0.12's ``generate`` does, it
    returns a response whose ``error`` is set (``finish_reason`` ``'failed'``) instead of
    raising, and neither ``messages`` nor the store record it.
    """

    def __init__(
        self, session: Session, thread: str, preamble: Preamble | None, options: Mapping[str, Any]
    ) -> None:
        """Use ``ai.chat`` or ``session.chat`` instead."""
        _check_option_names(options, GENERATE_OPTIONS | _CREATE_ONLY, 'chat()')
        self._session = session
        self._thread = thread
        options = dict(options)
        self._render_input = options.pop('input', None)
        if isinstance(preamble, GenerateActionOptions):
            # A rendered prompt is treated as options; explicit options win.
            options = {**rendered_to_options(preamble), **options}
            preamble = None
        self._pending_prompt: ExecutablePrompt[Any, Any] | None = preamble
        # The prompt renders against the state as it is now, as JS renders eagerly.
        self._state_at_creation = session.state if preamble is not None else None  # a copy
        if preamble is not None and 'system' in options:
            raise TypeError(
                'chat() got both a preamble prompt and system=; put the system text in the prompt'
            )
        self._explicit = options
        self._base: dict[str, Any] = {}
        self._preamble: list[Message] = []
        self._extra: list[Message] = []
        if preamble is None:
            self._set_base(options)
        self._messages: list[Message] = []
        self._stored_len: int | None = 0
        self._turns = 0
        self._adopt(session._threads.get(thread, []))

    # -- public API ---------------------------------------------------------------------

    @property
    def session(self) -> Session:
        """The session this chat belongs to."""
        return self._session

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self._session.id

    @property
    def thread(self) -> str:
        """The thread name (``'main'`` by default)."""
        return self._thread

    @property
    def messages(self) -> list[Message]:
        """The conversation so far: preamble, history, tool calls and replies (a copy)."""
        return list(self._messages)

    async def send(self, prompt: Any = None, /, **options: Any) -> ModelResponse[Any]:
        """Send one user turn and return the model's response.

        ``prompt`` is a str, a Part or list of Parts, a prompt's rendered options, or a
        dict of options. Keyword options are ``ai.generate``'s (``config``, ``tools``,
        ``messages``, ``output_schema``...) plus ``on_chunk``; they apply to this send only.

        Example:
            >>> # response = await chat.send('hi')
            >>> # response = await chat.send('again', config={'temperature': 0})

        """
        prompt, options = self._normalise_send(prompt, options)
        return await self._turn(prompt, options, options.pop('on_chunk', None))

    def send_stream(self, prompt: Any = None, /, **options: Any) -> ChatStreamResponse:
        """Like :meth:`send`, streaming: ``.stream`` yields chunks, ``.response`` the reply.

        Shaped like genkit's ``generate_stream``: ``async for chunk in r.stream`` (or
        ``async for chunk in r``), then ``await r.response``. If the turn fails, both
        raise the same error. Must be called with an event loop running.
        """
        prompt, options = self._normalise_send(prompt, options)
        if 'on_chunk' in options:
            raise TypeError('send_stream() does not take on_chunk; iterate .stream instead')
        return ChatStreamResponse(lambda on_chunk: self._turn(prompt, options, on_chunk))

    def __repr__(self) -> str:
        """Short description: session, thread, number of messages."""
        return (
            f'Chat(session_id={self.session_id!r}, thread={self._thread!r}, messages={len(self._messages)})'
        )

    # -- internals ----------------------------------------------------------------------

    def _set_base(self, options: Mapping[str, Any]) -> None:
        """Build the request base from chat options (JS ``chat()``, no preamble prompt)."""
        base = dict(options)
        system = base.pop('system', None)
        preamble: list[Message] = []
        if system is not None:
            content = [Part(text=system)] if isinstance(system, str) else system
            if isinstance(content, Part):
                content = [content]
            preamble.append(Message(role='system', content=content))
        preamble.extend(coerce_messages(base.pop('messages', None) or [], what='messages'))
        self._preamble = tag_as_preamble(preamble)
        prompt = base.pop('prompt', None)
        if prompt is not None:
            # JS: a `prompt` given at creation becomes an untagged user message.
            content = _normalise_prompt(prompt)
            parts = [Part(text=content)] if isinstance(content, str) else content
            self._extra = [Message(role='user', content=parts)]
        self._base = base

    def _adopt(self, history: list[Message]) -> None:
        """Merge the request base with a thread's stored history (JS rules)."""
        if self._turns == 0 and self._preamble and not _starts_with_preamble(history, self._preamble):
            # A fresh preamble replaces any stored one.
            merged = self._preamble + [m for m in history if not is_preamble(m)] + self._extra
        elif self._turns == 0:
            merged = list(history) + self._extra
        else:
            merged = list(history)
        self._messages = merged
        unchanged_prefix = len(merged) >= len(history) and all(
            kept is stored for kept, stored in zip(merged, history, strict=False)
        )
        # None: the stored thread no longer matches, so the next commit rewrites it.
        self._stored_len = len(history) if unchanged_prefix else None
        self._seen_version = self._session._thread_version(self._thread)

    async def _render_preamble(self) -> None:
        prompt = self._pending_prompt
        if prompt is None:
            return
        render_options = {k: v for k, v in self._explicit.items() if k in _RENDER_OPTIONS}
        rendered = await prompt.render(
            self._render_input, **render_options, metadata={'state': self._state_at_creation}
        )
        options = rendered_to_options(rendered)
        explicit = {k: v for k, v in self._explicit.items() if k != 'messages'}
        self._set_base({**options, **explicit})
        self._pending_prompt = None
        self._adopt(self._session._threads.get(self._thread, []))

    def _normalise_send(self, prompt: Any, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if isinstance(prompt, GenerateActionOptions):
            options = {**rendered_to_options(prompt), **options}
            prompt = None
        elif isinstance(prompt, Mapping):
            options = {**prompt, **options}
            prompt = None
        _check_option_names(options, GENERATE_OPTIONS | _SEND_ONLY, 'send()')
        if prompt is None:
            prompt = options.pop('prompt', None)
        elif 'prompt' in options:
            raise TypeError('send() got prompt both positionally and as an option')
        if prompt is not None:
            prompt = _normalise_prompt(prompt)
        on_chunk = options.get('on_chunk')
        if on_chunk is not None and not callable(on_chunk):
            raise TypeError(f'on_chunk must be callable, not {type(on_chunk).__name__}')
        if 'messages' in options:
            options['messages'] = coerce_messages(options['messages'] or [], what='messages')
        return prompt, options

    async def _turn(
        self,
        prompt: str | list[Part] | None,
        options: dict[str, Any],
        on_chunk: Callable[[ModelResponseChunk[Any]], object] | None,
    ) -> ModelResponse[Any]:
        session = self._session
        async with session._turn_lock(self._thread):
            await session._ensure_loaded()
            await self._render_preamble()
            if self._seen_version != session._thread_version(self._thread):
                # Another chat on this thread moved it on: continue from what it stored.
                self._adopt(session._threads.get(self._thread, []))
            history = self._messages + list(options.pop('messages', []))
            request = {**self._base, **options, 'messages': history}
            if prompt is not None:
                request['prompt'] = prompt
            span_input = {'prompt': prompt} if prompt is not None else {}
            with (
                session._activate(),
                _compat.helper_span(
                    'send',
                    labels={'genkit:sessionId': session.id, 'genkit:threadName': self._thread},
                    input=span_input,
                ) as span,
            ):
                response = await self._generate(request, on_chunk)
                _compat.set_span_output(span, _compat.to_span_json(response))
            if response.error is not None:
                # genkit 0.12 reports a failed generate on the response instead of raising;
                # a failed turn is returned the same way and leaves history and store alone.
                return response
            messages = list(response.messages)
            appendable = self._stored_len == len(self._messages) and len(messages) >= len(self._messages)
            await session._commit_thread(
                self._thread, messages, first_new=len(self._messages) if appendable else None
            )
            # The stored thread, which on shared stores includes turns other workers
            # committed meanwhile.
            self._messages = list(session._threads.get(self._thread, messages))
            self._stored_len = len(self._messages)
            self._seen_version = session._thread_version(self._thread)
            self._turns += 1
            return response

    async def _generate(
        self, request: dict[str, Any], on_chunk: Callable[[ModelResponseChunk[Any]], object] | None
    ) -> ModelResponse[Any]:
        ai = self._session._ai
        if on_chunk is None:
            return await ai.generate(**request)
        streamed = ai.generate_stream(**request)
        async for chunk in streamed.stream:
            on_chunk(chunk)
        return await streamed.response


_DONE = object()


class ChatStreamResponse:
    """What :meth:`Chat.send_stream` returns: ``.stream`` of chunks and ``.response``."""

    def __init__(
        self,
        run: Callable[[Callable[[ModelResponseChunk[Any]], None]], Awaitable[ModelResponse[Any]]],
    ) -> None:
        """Start the turn at once; chunks queue until read."""
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[ModelResponse[Any]] = asyncio.ensure_future(run(self._queue.put_nowait))
        self._task.add_done_callback(lambda _: self._queue.put_nowait(_DONE))

    @property
    def stream(self) -> AsyncIterator[ModelResponseChunk[Any]]:
        """The chunks, in order; raises the turn's error if it fails."""
        return self._iterate()

    @property
    def response(self) -> Awaitable[ModelResponse[Any]]:
        """The final response, once the turn has been persisted."""
        return self._task

    def __aiter__(self) -> AsyncIterator[ModelResponseChunk[Any]]:
        """Iterate the chunks directly: ``async for chunk in chat.send_stream('hi')``."""
        return self._iterate()

    def __await__(self) -> Generator[Any, None, ModelResponse[Any]]:
        """``await chat.send_stream(...)`` is the final response."""
        return self._task.__await__()

    async def _iterate(self) -> AsyncIterator[ModelResponseChunk[Any]]:
        while True:
            item = await self._queue.get()
            if item is _DONE:
                break
            yield item
        # Surface the turn's failure here too (and mark it retrieved).
        self._task.result()
