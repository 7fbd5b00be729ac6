"""The Genkit veneer: ``genkit_parity.Genkit`` and ``extend(ai)``.

Both add the same methods (``create_session``, ``load_session``, ``current_session``,
``chat``) on top of genkit's own ``Genkit``; nothing else about the instance changes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import genkit
from genkit.model import BackgroundAction, ModelInfo
from pydantic import BaseModel

from . import _compat, background, dap, formats, rag, schemas, tracing
from ._rag_schema import ConfigSchema
from .background import Operation
from .chat import Chat, Preamble
from .session import Session, current_session, load_session, new_session
from .stores import SessionStore

__all__ = ['Genkit', 'GenkitParityMixin', 'extend']

G = TypeVar('G', bound=genkit.Genkit)

# genkit's class as imported, kept even if an app (or a test harness) rebinds genkit.Genkit.
_GENKIT_CLASS = genkit.Genkit

# The mixin only ever sits on genkit.Genkit instances; type checkers should know that.
if TYPE_CHECKING:
    _GenkitBase = genkit.Genkit
else:
    _GenkitBase = object


class GenkitParityMixin(_GenkitBase):
    """The methods genkit-parity adds to a ``genkit.Genkit`` instance."""

    #: Raise ``GenkitError`` INVALID_ARGUMENT from ``generate()`` on a schema mismatch (JS).
    strict_output: bool = False
    #: List model config schemas in JS's draft-07 shape (``metadata.model.customOptions``).
    js_config_schemas: bool = False

    if not TYPE_CHECKING:  # type checkers keep genkit's own (overloaded) signatures

        async def generate(self, *args: Any, strict_output: bool | None = None, **kwargs: Any) -> Any:
            """Genkit's ``generate``; ``strict_output=True`` raises on a schema mismatch as JS does.

            ``docs=`` are injected into the prompt as genkit does, except for a model that
            declares ``supports.context`` (it gets them in ``request.docs`` only), as in JS.
            """
            with _compat.js_generate_rules():
                response = await super().generate(*args, **kwargs)
            if self.strict_output if strict_output is None else strict_output:
                formats.raise_for_invalid_output(response)
            return response

        def generate_stream(self, *args: Any, strict_output: bool | None = None, **kwargs: Any) -> Any:
            """Genkit's ``generate_stream``; with ``strict_output`` its ``response`` raises on a mismatch."""
            with _compat.js_generate_rules():
                stream_response = super().generate_stream(*args, **kwargs)
            if self.strict_output if strict_output is None else strict_output:
                _compat.check_stream_response(stream_response, formats.raise_for_invalid_output)
            return stream_response

    def define_model(
        self,
        name: str,
        fn: Any,
        config_schema: Any = None,
        metadata: dict[str, object] | None = None,
        info: Any = None,
        description: str | None = None,
    ) -> Any:
        """Genkit's ``define_model``; with ``js_config_schemas`` the config is listed in JS's shape.

        By default ``metadata.model.customOptions`` is genkit's own. On an instance made with
        ``js_config_schemas=True`` it becomes the draft-07, JS-shaped schema of a Pydantic
        config class (see :mod:`genkit_parity.schemas`); a JSON Schema dict is listed as
        given and a model without a config schema lists none, as in JS.
        """
        action = super().define_model(name, fn, config_schema, metadata, info, description)
        if (
            self.js_config_schemas
            and isinstance(config_schema, type)
            and issubclass(config_schema, BaseModel)
        ):
            _compat.set_model_custom_options(action, schemas.dev_ui_schema(config_schema))
        return action

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` as a traced step (span type ``flowStep``), as JS's ``ai.run``.

        ``ai.run(name, fn)`` and ``ai.run(name, input, fn)`` (``fn(input)``; the input is
        recorded on the span) with ``fn`` sync or async. Genkit's keyword form
        ``ai.run(name=..., fn=..., metadata=None)`` is genkit's own (``fn`` must be a
        coroutine function there). Returns what ``fn`` returns.
        """
        if not args and 'fn' in kwargs and 'input' not in kwargs:
            return await super().run(**kwargs)
        name = kwargs.pop('name', None)
        fn = kwargs.pop('fn', None)
        metadata = kwargs.pop('metadata', None)
        if 'input' in kwargs:
            args = (kwargs.pop('input'), *args)
        if kwargs:
            raise TypeError(f'run() got unexpected keyword arguments: {", ".join(kwargs)}')
        if name is None and args:
            name, args = args[0], args[1:]
        if fn is None and args:
            *args_list, fn = args
            args = tuple(args_list)
        if not isinstance(name, str) or not name:
            raise TypeError('run() needs a step name (a non-empty str)')
        if not callable(fn):
            raise TypeError(f'run() needs a callable fn, not {type(fn).__name__}')
        if len(args) > 1:
            raise TypeError('run() takes (name, fn) or (name, input, fn)')
        has_input = len(args) == 1
        with _compat.step_span(
            name, input=args[0] if has_input else None, has_input=has_input, metadata=metadata
        ) as span:
            result = fn(args[0]) if has_input else fn()
            if inspect.isawaitable(result):
                result = await result
            _compat.set_span_output(span, _compat.to_span_json(result))
            return result

    def define_json_schema(self, name: str, json_schema: dict[str, object]) -> dict[str, object]:
        """Register a named JSON Schema for prompts (JS ``ai.defineJsonSchema``), validated first.

        Returns ``json_schema`` unchanged, as JS does.

        Raises:
            TypeError: ``name`` is not a non-empty str or ``json_schema`` not a dict.
            ValueError: ``json_schema`` is not a valid JSON Schema (the message names where),
                or ``name`` is already registered.

        """
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f'name must be a non-empty str, not {name!r}')
        if not isinstance(json_schema, dict):
            raise TypeError(f'json_schema must be a dict, not {type(json_schema).__name__}')
        schemas.validate_json_schema(json_schema)
        return super().define_json_schema(name, json_schema)

    async def stop_servers(self, timeout: float = 5.0) -> None:
        """Stop the Dev UI reflection server and deliver queued traces (JS ``stopServers``).

        Waits up to ``timeout`` seconds for each.
        """
        await asyncio.to_thread(_compat.stop_reflection_server, self, timeout)
        await tracing.flush_tracing(timeout)

    def create_session(
        self,
        *,
        store: SessionStore | None = None,
        initial_state: Any = None,
        session_id: str | None = None,
    ) -> Session:
        """Start a session (JS ``ai.createSession``).

        Args:
            store: where it persists; an in-memory store by default.
            initial_state: any JSON-able value (usually a dict).
            session_id: trimmed; a fresh UUID when omitted. An id already in ``store``
                starts afresh (use :meth:`load_session` to continue one).

        Example:
            >>> # session = ai.create_session(initial_state={'user': 'Ada'})
            >>> # await session.chat().send('hi')

        """
        return new_session(self, store=store, initial_state=initial_state, session_id=session_id)

    async def load_session(self, session_id: str, *, store: SessionStore | None = None) -> Session:
        """Load a session from ``store`` (JS ``ai.loadSession``).

        An id the store has never seen gives an empty session (no state, no threads) and
        no error, as in JS. ``CorruptSessionError`` if the stored data cannot be read;
        ``ValueError`` without a ``store`` (there is nothing to load from).
        """
        if store is None:
            raise ValueError(
                'store is required: load_session needs store=..., the store the session was '
                'saved to (e.g. FileSessionStore(path) or default_store())'
            )
        return await load_session(self, session_id, store=store)

    @staticmethod
    def current_session() -> Any:
        """The session running now (inside ``session.run``, ``chat`` or ``send``), or None.

        Also returns a ``genkit.exp`` agent session when one is running. Outside any
        session it returns ``None``, as genkit's own does (and it can be called on the
        class, like genkit's staticmethod); ``genkit_parity.current_session()`` raises
        ``GenkitError`` ``FAILED_PRECONDITION`` there instead, as JS does.
        """
        try:
            return current_session()
        except genkit.GenkitError:
            return _compat.agent_session()

    def chat(
        self,
        preamble: Preamble | None = None,
        /,
        *,
        store: SessionStore | None = None,
        session_id: str | None = None,
        **options: Any,
    ) -> Chat:
        """Start a chat on the main thread of a session (JS ``ai.chat``).

        Unlike JS 1.38, ``store`` and ``session_id`` are honoured: the chat persists to
        ``store`` under ``session_id``, continuing that session if the store holds it.
        Other options are ``ai.generate``'s (``model``, ``system``, ``messages``,
        ``config``, ``tools``...) plus ``input`` for a preamble prompt.

        Example:
            >>> # chat = ai.chat(system='Talk like a pirate')
            >>> # print((await chat.send('hi')).text)

        """
        if session_id is not None and store is None:
            warnings.warn(
                f'ai.chat(session_id={session_id!r}) without store=: the chat is kept in memory '
                'only and is not persisted; pass store=... to persist and continue it',
                UserWarning,
                stacklevel=2,
            )
        session = new_session(
            self,
            store=store,
            initial_state=None,
            session_id=session_id,
            load_on_first_use=store is not None and session_id is not None,
        )
        args = () if preamble is None else (preamble,)
        return session.chat(*args, **options)

    # -- dynamic action providers -----------------------------------------------------------

    def define_dynamic_action_provider(
        self,
        name: str,
        fn: dap.ProviderFn,
        *,
        cache_ttl_millis: int | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dap.DynamicActionProvider:
        """Register a provider of actions discovered at run time (JS ``defineDynamicActionProvider``).

        ``fn()`` (sync or async) returns ``{action_type: [actions or tools]}``, e.g.
        ``{'tool': [...]}``. Results are cached for ``cache_ttl_millis`` (unset or 0 → 3,000
        ms, negative → not cached), and one fetch serves every concurrent caller on any
        event loop or thread. Provided actions resolve as
        ``/dynamic-action-provider/<name>:<type>/<action>``, ``generate(tools=['<name>:tool/*'])``
        (also ``'<name>:tool/prefix*'`` and exact names) uses them whichever way the tools were
        built, and the Dev UI lists them.

        Example:
            >>> # tools = ai.define_dynamic_action_provider('mcp', lambda: {'tool': [search, fetch]})
            >>> # await ai.generate(prompt='...', tools=['mcp:tool/*'])

        """
        return dap.define_dynamic_action_provider(
            self.registry,
            name,
            fn,
            cache_ttl_millis=cache_ttl_millis,
            description=description,
            metadata=metadata,
        )

    def dynamic_tool(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        input_schema: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> genkit.Tool:
        """A tool that is not registered (JS ``ai.dynamicTool``).

        Pass it to ``generate(tools=[...])`` or return it from a dynamic action provider.
        ``fn`` may be sync or async; the tool's metadata carries ``dynamic: True``.
        """
        if not callable(fn):
            raise TypeError(f'fn must be callable, not {type(fn).__name__}')
        implementation = fn
        if not inspect.iscoroutinefunction(fn):
            # genkit tools must be coroutine functions; JS accepts sync ones too.
            @functools.wraps(fn)
            async def implementation(*args: Any, **kwargs: Any) -> Any:
                return fn(*args, **kwargs)

            # genkit reads the parameters with getfullargspec, which ignores __wrapped__.
            implementation.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]

        made = genkit.tool(implementation, name=name, description=description, input_schema=input_schema)
        made.action().metadata.update({**(metadata or {}), 'type': 'tool', 'dynamic': True})
        return made

    # -- retrieval-augmented generation (JS's retriever, indexer and reranker API) -----------

    def define_retriever(
        self,
        name: str,
        fn: rag.RetrieverFn,
        *,
        config_schema: ConfigSchema | None = None,
        info: Mapping[str, Any] | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Register a retriever (JS ``ai.defineRetriever``); returns its action.

        ``fn(query, options)`` (sync or async) gets the query as a ``Document`` and the
        options validated against ``config_schema`` (an instance of a Pydantic class, or the
        dict for a JSON Schema), and returns documents (``Document``s, dicts, or
        ``{'documents': [...]}``). Listed as ``/retriever/<name>`` with JS's metadata
        (``info``, ``retriever.customOptions``) and schemas.

        Example:
            >>> # ai.define_retriever('menu', lambda q, o: [Document.from_text('pie')])
            >>> # docs = await ai.retrieve(retriever='menu', query='dessert')

        """
        return rag.define_retriever(
            self.registry,
            name,
            fn,
            config_schema=config_schema,
            info=info,
            description=description,
            metadata=metadata,
        )

    def define_simple_retriever(
        self,
        name: str,
        handler: Callable[[genkit.Document, Any], Any],
        *,
        content: str | Callable[[Any], Any] | None = None,
        metadata: Sequence[str] | Callable[[Any], Any] | None = None,
        config_schema: ConfigSchema | None = None,
    ) -> Any:
        """Register a retriever over any items (JS ``ai.defineSimpleRetriever``).

        ``handler(query, config)`` returns items; a str becomes a text document, other items
        are mapped by ``content`` (a key, or a function returning text or parts) and
        ``metadata`` (a list of keys, a function, or by default the item without its
        content key). ``GenkitError`` INVALID_ARGUMENT for a null item or an object without
        a ``content`` option, as JS.
        """
        return rag.define_simple_retriever(
            self.registry, name, handler, content=content, metadata=metadata, config_schema=config_schema
        )

    def define_indexer(
        self,
        name: str,
        fn: rag.IndexerFn,
        *,
        config_schema: ConfigSchema | None = None,
        embedder_info: Mapping[str, Any] | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Register an indexer (JS ``ai.defineIndexer``): ``fn(documents, options)`` stores them."""
        return rag.define_indexer(
            self.registry,
            name,
            fn,
            config_schema=config_schema,
            embedder_info=embedder_info,
            description=description,
            metadata=metadata,
        )

    def define_reranker(
        self,
        name: str,
        fn: rag.RerankerFn,
        *,
        config_schema: ConfigSchema | None = None,
        info: Mapping[str, Any] | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Register a reranker (JS ``ai.defineReranker``).

        ``fn(query, documents, options)`` returns the documents to keep, in order, each with
        a numeric ``metadata['score']`` (else ``GenkitError`` INVALID_ARGUMENT, as JS).
        """
        return rag.define_reranker(
            self.registry,
            name,
            fn,
            config_schema=config_schema,
            info=info,
            description=description,
            metadata=metadata,
        )

    async def retrieve(
        self, *, retriever: object, query: str | genkit.Document | Mapping[str, Any], options: Any = None
    ) -> list[genkit.Document]:
        """Run a retriever (a name, a ref or the action) on ``query`` (JS ``ai.retrieve``).

        ``options`` are validated against the retriever's config schema (``GenkitError``
        INVALID_ARGUMENT naming the field); an unknown retriever is ``NOT_FOUND``.
        """
        return await rag.retrieve(self.registry, retriever=retriever, query=query, options=options)

    async def index(self, *, indexer: object, documents: Sequence[object], options: Any = None) -> None:
        """Run an indexer on ``documents`` (JS ``ai.index``)."""
        await rag.index(self.registry, indexer=indexer, documents=documents, options=options)

    async def rerank(
        self,
        *,
        reranker: object,
        query: str | genkit.Document | Mapping[str, Any],
        documents: Sequence[object],
        options: Any = None,
    ) -> list[rag.RankedDocument]:
        """Rerank ``documents`` for ``query`` (JS ``ai.rerank``); each result has ``.score``."""
        return await rag.rerank(
            self.registry, reranker=reranker, query=query, documents=documents, options=options
        )

    # -- background operations ------------------------------------------------------------

    def define_background_action(
        self,
        name: str,
        *,
        start: Callable[..., Any],
        check: Callable[..., Any],
        cancel: Callable[..., Any] | None = None,
        action_type: str = 'custom',
        input_schema: type | dict[str, Any] | None = None,
        output_schema: type | dict[str, Any] | None = None,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> BackgroundAction[Any]:
        """Register a long-running action polled through an ``Operation`` (JS ``defineBackgroundAction``).

        ``start(input[, ctx])`` begins the work and returns an ``Operation`` (or its dict);
        ``check(operation[, ctx])`` and ``cancel(operation[, ctx])`` return its new state.
        Each may be sync or async. Registers ``/<action_type>/<name>``,
        ``/check-operation/<name>/check`` and, with ``cancel``, ``/cancel-operation/<name>/cancel``,
        with JS's metadata and schemas; every returned operation has ``action`` set to the
        start key. ``output_schema`` describes the finished operation's ``output``.

        Example:
            >>> # job = ai.define_background_action('render', start=start, check=check)
            >>> # op = await job.start({'scene': 1}); op = await ai.wait_for_operation(op)

        """
        return background.define_background_action(
            self.registry,
            name,
            start=start,
            check=check,
            cancel=cancel,
            action_type=action_type,
            input_schema=input_schema,
            output_schema=output_schema,
            description=description,
            metadata=metadata,
        )

    def define_background_model(
        self,
        name: str,
        start: Callable[..., Any],
        check: Callable[..., Any],
        cancel: Callable[..., Any] | None = None,
        label: str | None = None,
        info: ModelInfo | Mapping[str, Any] | None = None,
        config_schema: type | dict[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        description: str | None = None,
        *,
        supports: Mapping[str, Any] | None = None,
        versions: list[str] | None = None,
        report_latency: bool = False,
    ) -> BackgroundAction[Any]:
        """Register a background model (JS ``defineBackgroundModel``), e.g. video generation.

        ``start(request[, ctx])`` receives the ``ModelRequest`` and returns an ``Operation``;
        ``ai.generate(model=name, ...)`` then returns at once with ``response.operation``.
        ``metadata.model`` carries ``label``, ``supports`` (always ``longRunning: True``),
        ``versions`` and ``customOptions`` (the JSON schema of ``config_schema``, JS-shaped
        with ``js_config_schemas``). A config instance of another class than
        ``config_schema`` is ``INVALID_ARGUMENT``, as in genkit. ``report_latency=True``
        adds JS's top-level ``latencyMs`` to the started operation (off by default: genkit's
        ``Operation`` has no such field and its reload path rejects it). Same parameters as
        genkit's own ``define_background_model``, plus ``supports``, ``versions`` and
        ``report_latency``.
        """
        return background.define_background_model(
            self.registry,
            name,
            start=start,
            check=check,
            cancel=cancel,
            label=label,
            info=info,
            supports=supports,
            versions=versions,
            config_schema=config_schema,
            metadata=metadata,
            description=description,
            report_latency=report_latency,
            js_config_schema=self.js_config_schemas,
        )

    async def check_operation(
        self,
        operation: Operation | genkit.model.Operation | Mapping[str, Any] | str,
        *,
        context: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Operation:
        """Check an operation once (JS ``checkOperation``); returns its new state.

        Takes an ``Operation``, as genkit does: a dict or a JSON string is ``INVALID_ARGUMENT``
        (reload a saved one with ``Operation.model_validate(...)``). Errors are genkit's, with
        its ``reason``: no ``action`` → ``INVALID_ARGUMENT: Provided operation is missing
        original request information`` (``INVALID_INPUT``); an unknown action →
        ``INVALID_ARGUMENT: Failed to resolve background action from original request:
        <action>`` (``ACTION_NOT_FOUND``). ``config`` is folded into ``context['config']``
        for the check function.
        """
        return await background.check_operation(self.registry, operation, context=context, config=config)

    async def cancel_operation(
        self,
        operation: Operation | genkit.model.Operation | Mapping[str, Any] | str,
        *,
        context: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Operation:
        """Cancel an operation (JS ``cancelOperation``); ``UNIMPLEMENTED`` if it has no cancel.

        Takes an ``Operation`` and raises as :meth:`check_operation` does.
        """
        return await background.cancel_operation(self.registry, operation, context=context, config=config)

    async def wait_for_operation(
        self,
        operation: Operation | genkit.model.Operation | Mapping[str, Any] | str,
        *,
        interval: float = 1.0,
        max_interval: float = 30.0,
        timeout: float | None = None,
        multiplier: float = 2.0,
        jitter: float = 0.2,
        context: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Operation:
        """Poll an operation until it is done and return it (new; JS has no equivalent).

        Checks at once, then sleeps ``interval`` seconds, growing by ``multiplier`` up to
        ``max_interval``, each delay spread by ±``jitter``; the pacing, deadline and timers
        run in the Rust core. An operation that finishes with ``error`` set is returned,
        not raised. Policy for failures: a check that raises ends the wait at once with
        that exception (it is not retried). At ``timeout`` seconds (after a last check
        right at the deadline) ``OperationTimeoutError`` is raised, carrying the last
        ``operation`` state and the number of ``checks``. Cancelling the awaiting task
        stops the polling immediately.

        Example:
            >>> # response = await ai.generate(model='video-model', prompt='a cat')
            >>> # done = await ai.wait_for_operation(response.operation, interval=2, timeout=600)

        """
        return await background.wait_for_operation(
            self.registry,
            operation,
            interval=interval,
            max_interval=max_interval,
            timeout=timeout,
            multiplier=multiplier,
            jitter=jitter,
            context=context,
            config=config,
        )


class Genkit(GenkitParityMixin, genkit.Genkit):
    """``genkit.Genkit`` with genkit-parity's methods; genkit's constructor plus two options.

    Args:
        *args: genkit's ``Genkit`` arguments (``plugins``, ``model``, ...).
        fast_formats: use the Rust incremental parser for the ``json``, ``array`` and
            ``jsonl`` output formats (see :mod:`genkit_parity.formats`); False keeps genkit's.
        js_config_schemas: list model config schemas (``metadata.model.customOptions``) in
            JS's draft-07 shape, and give background models Genkit's common config schema by
            default, as JS does (default: genkit's own shape).
        strict_output: make ``generate()`` raise ``GenkitError`` ``INVALID_ARGUMENT`` when
            the output does not match the schema, as JS does (default: genkit's behaviour,
            ``output`` None and ``response.error`` set). A per-call ``strict_output=``
            overrides it.
        operation_store: a :class:`RedisOperationStore` or :class:`PostgresOperationStore`:
            started operations are stored there, and ``check_operation`` /
            ``wait_for_operation`` take an operation or its id from any worker; a done
            operation comes from the store without asking the provider again.
        **kwargs: genkit's ``Genkit`` keyword arguments.

    Example:
        >>> from genkit_parity import Genkit
        >>> ai = Genkit()
        >>> session = ai.create_session(initial_state={'n': 1})
        >>> session.state
        {'n': 1}

    """

    def __init__(
        self,
        *args: Any,
        fast_formats: bool = True,
        strict_output: bool = False,
        operation_store: background.OperationStore | None = None,
        js_config_schemas: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        _configure(
            self,
            fast_formats=fast_formats,
            strict_output=strict_output,
            js_config_schemas=js_config_schemas,
            operation_store=operation_store,
        )


def _configure(
    ai: GenkitParityMixin,
    *,
    fast_formats: bool | None,
    strict_output: bool | None,
    js_config_schemas: bool | None = None,
    operation_store: background.OperationStore | None = None,
) -> None:
    """Apply the options that were given (None leaves a setting as it is)."""
    for option in (fast_formats, strict_output, js_config_schemas):
        if option is not None and not isinstance(option, bool):
            raise TypeError('fast_formats, strict_output and js_config_schemas must be bools')
    if js_config_schemas is not None:
        ai.js_config_schemas = js_config_schemas
    if fast_formats is not None:
        formats.use_fast_formats(ai, fast_formats)
    if strict_output is not None:
        ai.strict_output = strict_output
    if operation_store is not None:
        background.set_operation_store(ai.registry, operation_store)
    tracing.install_default()


_extended_classes: dict[type, type] = {}


def extend(
    ai: G,
    *,
    fast_formats: bool | None = None,
    strict_output: bool | None = None,
    operation_store: background.OperationStore | None = None,
    js_config_schemas: bool | None = None,
) -> G:
    """Add genkit-parity's methods to an existing ``Genkit`` (or ``genkit.exp.Genkit``).

    The instance's class is swapped for a subclass that also has the mixin, so
    ``isinstance`` checks keep working. Returns the same instance. ``fast_formats``,
    ``strict_output``, ``js_config_schemas`` and ``operation_store`` are as for
    :class:`Genkit` (defaults: True, False, False and none). On an instance
    already extended, only the options passed change; the others stay as they are.
    """
    if not isinstance(ai, _GENKIT_CLASS):
        raise TypeError(f'ai must be a genkit.Genkit instance, not {type(ai).__name__}')
    if isinstance(ai, GenkitParityMixin):
        _configure(
            ai,
            fast_formats=fast_formats,
            strict_output=strict_output,
            js_config_schemas=js_config_schemas,
            operation_store=operation_store,
        )
        return ai
    fast_formats = True if fast_formats is None else fast_formats
    strict_output = False if strict_output is None else strict_output
    js_config_schemas = False if js_config_schemas is None else js_config_schemas
    base = type(ai)
    extended = _extended_classes.get(base)
    if extended is None:
        extended = type(
            base.__name__, (GenkitParityMixin, base), {'__module__': base.__module__, '__doc__': base.__doc__}
        )
        _extended_classes[base] = extended
    ai.__class__ = extended
    _configure(
        cast(GenkitParityMixin, ai),
        fast_formats=fast_formats,
        strict_output=strict_output,
        operation_store=operation_store,
        js_config_schemas=js_config_schemas,
    )
    return ai
