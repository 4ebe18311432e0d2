"""Named expressions: placeholders in a research's unit arguments, resolved when it runs.

``EC('key')`` an item of the experiment's config, ``EC()`` the whole config, ``O('unit')``
a unit's latest output, ``E()`` the running experiment (``.config``, ``.random``,
``.id``, ``.iteration``, ``.path``), ``EP()`` the experiment's folder. Attribute and
item access on an expression (``E().random``, ``EC()['a']``) is resolved too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .errors import ParameterError


class Context(Protocol):
    """What an expression is resolved against: the running experiment."""

    config: Mapping[str, Any]

    def output(self, unit: str) -> Any: ...


class NamedExpression:
    """A placeholder; ``resolve(context)`` gives its value in the running experiment."""

    __slots__ = ("_arg", "_path")
    _tag = ""

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not isinstance(name, str):
            raise ParameterError(f"{type(self).__name__}({name!r}): give a name (a string)")
        self._arg = name
        self._path: tuple[tuple[str, Any], ...] = ()

    def _extend(self, step: tuple[str, Any]) -> NamedExpression:
        new = object.__new__(type(self))
        new._arg = self._arg
        new._path = (*self._path, step)
        return new

    def __getattr__(self, name: str) -> NamedExpression:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._extend(("attr", name))

    def __getitem__(self, key: Any) -> NamedExpression:
        return self._extend(("item", key))

    def _base(self, ctx: Any) -> Any:
        raise NotImplementedError

    def resolve(self, ctx: Any) -> Any:
        value = self._base(ctx)
        for kind, key in self._path:
            try:
                value = getattr(value, key) if kind == "attr" else value[key]
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise ParameterError(f"{self!r}: {type(exc).__name__}: {exc}") from None
        return value

    def __slurmbatch_key__(self) -> tuple[Any, ...]:
        """Identity in experiment ids: what the expression refers to, not its value."""
        return (self._tag, self._arg, tuple(self._path))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, NamedExpression)
                and self.__slurmbatch_key__() == other.__slurmbatch_key__())

    def __hash__(self) -> int:
        return hash(repr(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._arg, self._path))

    def __repr__(self) -> str:
        arg = "" if self._arg is None else repr(self._arg)
        tail = "".join(f".{k}" if kind == "attr" else f"[{k!r}]" for kind, k in self._path)
        return f"{self._tag}({arg}){tail}"


def _rebuild(cls: type[NamedExpression], arg: str | None,
             path: tuple[tuple[str, Any], ...]) -> NamedExpression:
    new = object.__new__(cls)
    new._arg = arg
    new._path = path
    return new


class EC(NamedExpression):
    """An item of the experiment's config (``EC('a')``), or the whole config (``EC()``)."""

    __slots__ = ()
    _tag = "EC"

    def _base(self, ctx: Any) -> Any:
        if self._arg is None:
            return dict(ctx.config)
        if self._arg not in ctx.config:
            raise ParameterError(f"EC({self._arg!r}): the config {dict(ctx.config)!r} has no "
                                 f"key {self._arg!r}; add it to the domain")
        return ctx.config[self._arg]


class O(NamedExpression):  # noqa: E742 - the name the Research API uses
    """The latest output of a unit, by its name (``O('power')``, ``O('calc.power')``)."""

    __slots__ = ()
    _tag = "O"

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ParameterError(f"O({name!r}): give the name of a unit added before")
        super().__init__(name)

    def _base(self, ctx: Any) -> Any:
        return ctx.output(self._arg)


class _OfTheExperiment(NamedExpression):
    """An expression without an argument: something of the running experiment."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)


class E(_OfTheExperiment):
    """The running experiment: ``.config``, ``.random``, ``.id``, ``.iteration``, ``.path``."""

    __slots__ = ()
    _tag = "E"

    def _base(self, ctx: Any) -> Any:
        return ctx


class EP(_OfTheExperiment):
    """The experiment's own folder (created on first use), for files it writes."""

    __slots__ = ()
    _tag = "EP"

    def _base(self, ctx: Any) -> Any:
        return ctx.path


def resolve(value: Any, ctx: Any) -> Any:
    """``value`` with named expressions replaced, also inside lists, tuples and dicts."""
    if isinstance(value, NamedExpression):
        return value.resolve(ctx)
    t = type(value)
    if t is list or t is tuple:
        return t(resolve(v, ctx) for v in value)
    if t is dict:
        return {k: resolve(v, ctx) for k, v in value.items()}
    return value
