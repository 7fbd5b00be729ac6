"""The Genkit veneer: ``genkit_parity.Genkit`` and ``extend(ai)``.

Both add the same methods (``create_session``, ``load_session``, ``current_session``,
``chat``) on top of genkit's own ``Genkit``; nothing else about the instance changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import genkit

from . import _compat
from .chat import Chat, Preamble
from .session import Session, current_session, load_session, new_session
from .stores import SessionStore

__all__ = ['Genkit', 'GenkitParityMixin', 'extend']

G = TypeVar('G', bound=genkit.Genkit)

# The mixin only ever sits on genkit.Genkit instances; type checkers should know that.
if TYPE_CHECKING:
    _GenkitBase = genkit.Genkit
else:
    _GenkitBase = object


class GenkitParityMixin(_GenkitBase):
    """The methods genkit-parity adds to a ``genkit.Genkit`` instance."""

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

    async def load_session(self, session_id: str, *, store: SessionStore) -> Session:
        """Load a session from ``store`` (JS ``ai.loadSession``).

        An id the store has never seen gives an empty session (no state, no threads) and
        no error, as in JS. ``CorruptSessionError`` if the stored data cannot be read.
        """
        return await load_session(self, session_id, store=store)

    # genkit's own current_session() is a staticmethod returning None outside an agent
    # session; JS (and this) raises instead, so the signature differs on purpose.
    def current_session(self) -> Session:  # type: ignore[override]
        """The session running now (inside ``session.run``, ``chat`` or ``send``).

        Also returns a ``genkit.exp`` agent session when one is running. Raises
        ``GenkitError`` ``FAILED_PRECONDITION`` outside any session.
        """
        try:
            return current_session()
        except genkit.GenkitError:
            agent_session = _compat.agent_session()
            if agent_session is None:
                raise
            return agent_session  # type: ignore[no-any-return]

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
        session = new_session(
            self,
            store=store,
            initial_state=None,
            session_id=session_id,
            load_on_first_use=store is not None and session_id is not None,
        )
        args = () if preamble is None else (preamble,)
        return session.chat(*args, **options)


class Genkit(GenkitParityMixin, genkit.Genkit):
    """``genkit.Genkit`` with genkit-parity's methods; same constructor.

    Example:
        >>> from genkit_parity import Genkit
        >>> ai = Genkit()
        >>> session = ai.create_session(initial_state={'n': 1})
        >>> session.state
        {'n': 1}

    """


_extended_classes: dict[type, type] = {}


def extend(ai: G) -> G:
    """Add genkit-parity's methods to an existing ``Genkit`` (or ``genkit.exp.Genkit``).

    The instance's class is swapped for a subclass that also has the mixin, so
    ``isinstance`` checks keep working. Returns the same instance; idempotent.
    """
    if not isinstance(ai, genkit.Genkit):
        raise TypeError(f'ai must be a genkit.Genkit instance, not {type(ai).__name__}')
    if isinstance(ai, GenkitParityMixin):
        return ai
    base = type(ai)
    extended = _extended_classes.get(base)
    if extended is None:
        extended = type(
            base.__name__, (GenkitParityMixin, base), {'__module__': base.__module__, '__doc__': base.__doc__}
        )
        _extended_classes[base] = extended
    ai.__class__ = extended
    return ai
