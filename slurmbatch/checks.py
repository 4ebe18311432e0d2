"""The value checks every part shares: whole numbers given as options or parameters."""

from __future__ import annotations

from .errors import OptionError, SlurmbatchError

_WHAT = {1: "a positive integer", 0: "0 or a positive integer", None: "an integer"}


def check_int(value: object, name: str, *, least: int | None = 1, fix: str = "",
              error: type[SlurmbatchError] = OptionError) -> int:
    """``value`` if it is an int (not a bool) of at least ``least`` (any int if None);
    otherwise ``error`` naming ``name`` and the fix (``fix``, or what to give)."""
    if (isinstance(value, int) and not isinstance(value, bool)
            and (least is None or value >= least)):
        return value
    raise error(f"{name}={value!r}: {fix or 'give ' + _WHAT.get(least, f'an integer >= {least}')}")


def check_optional_int(value: object, name: str, *, least: int | None = 1,
                       error: type[SlurmbatchError] = OptionError) -> int | None:
    """``check_int``, with None allowed (and said so in the error)."""
    if value is None:
        return None
    return check_int(value, name, least=least, error=error,
                     fix=f"give {_WHAT.get(least, f'an integer >= {least}')} or None")
