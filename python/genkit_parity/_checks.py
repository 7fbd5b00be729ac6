"""Argument checks shared by the public constructors of more than one module."""

from __future__ import annotations

__all__ = ['MAX_POOL_SIZE', 'int_in']

#: The most connections one PostgreSQL pool may hold: the core's bound (deadpool sizes its
#: queue by it up front, so a huge one would abort the process).
MAX_POOL_SIZE = 10_000


def int_in(value: object, what: str, low: int, high: int) -> int:
    """``value`` if it is an int from ``low`` to ``high``: TypeError if no int, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{what} must be an int, not {type(value).__name__}')
    if not low <= value <= high:
        raise ValueError(f'{what} must be from {low} to {high}, not {value!r}')
    return value
