"""Domains: the parameter configurations of a research.

A ``Domain`` is a sequence of *cubes*; a cube is the Cartesian product of its factors
(the first one varies slowest). A factor is a finite list of partial configs (an
option's values, or a zip of options) or a ``Sampler`` drawing one value per config.
``*`` multiplies cubes pairwise, ``+`` concatenates cubes, ``@`` zips two domains of
equal length, ``w * domain`` weights cubes: consecutive weighted cubes form a block
from which configs are drawn at random in proportion to the weights.
Iterating a domain yields plain dict configs (with a ``repetition`` key when
``n_reps > 1``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .checks import check_int, check_optional_int
from .errors import ParameterError

REPETITION = "repetition"


class Sampler:
    """Random values of one option: a numpy ``Generator`` distribution and its arguments,
    e.g. ``Sampler('uniform', 0, 1)``, ``Sampler('choice', [1, 2, 3])``, or a function
    ``f(rng) -> value``."""

    def __init__(self, distribution: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(distribution, str):
            if not callable(getattr(np.random.default_rng(0), distribution, None)):
                raise ParameterError(f"Sampler({distribution!r}): numpy's Generator has no "
                                     "such distribution; e.g. 'uniform', 'normal', "
                                     "'integers', 'choice'")
        elif not callable(distribution):
            raise ParameterError(f"Sampler({distribution!r}): give a distribution name or "
                                 "a function of a numpy Generator")
        self.distribution = distribution
        self.args = args
        self.kwargs = kwargs

    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn with ``rng`` (numpy scalars as Python scalars)."""
        if callable(self.distribution):
            value = self.distribution(rng, *self.args, **self.kwargs)
        else:
            value = getattr(rng, self.distribution)(*self.args, **self.kwargs)
        return value.item() if isinstance(value, np.generic) else value

    def __repr__(self) -> str:
        name = getattr(self.distribution, "__name__", self.distribution)
        args = ", ".join([repr(name), *map(repr, self.args),
                          *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"Sampler({args})"


@dataclass(frozen=True)
class _Factor:
    """Finite partial configs, or one sampled option."""

    configs: tuple[dict[str, Any], ...] = ()
    name: str | None = None  # a sampled option's name
    sampler: Sampler | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        if self.sampler is not None:
            return (self.name,)  # type: ignore[return-value]
        return tuple(dict.fromkeys(k for c in self.configs for k in c))


@dataclass(frozen=True)
class _Cube:
    factors: tuple[_Factor, ...] = ()
    weight: float | None = None

    @property
    def finite(self) -> bool:
        return all(f.sampler is None for f in self.factors)

    @property
    def size(self) -> int:
        """Configs in one pass over the finite factors."""
        return math.prod(len(f.configs) for f in self.factors if f.sampler is None)

    def configs(self, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        """The product of finite factors; samplers drawn per config (forever if any)."""
        finite = [f for f in self.factors if f.sampler is None]
        while True:
            for combo in itertools.product(*(f.configs for f in finite)):
                combo_iter = iter(combo)
                config: dict[str, Any] = {}
                for f in self.factors:
                    if f.sampler is None:
                        config.update(next(combo_iter))
                    else:
                        config[f.name] = f.sampler.sample(rng)  # type: ignore[index]
                yield config
            if self.finite:
                return


def _values(name: str, values: Any) -> _Factor:
    if not isinstance(name, str) or not name:
        raise ParameterError(f"option name {name!r}: give a non-empty string")
    if isinstance(values, Sampler):
        return _Factor(name=name, sampler=values)
    if isinstance(values, np.ndarray):
        values = list(values) if values.ndim else [values.item()]
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (list, tuple, range)):
        raise ParameterError(f"option {name!r}: give a list of values or a Sampler, got "
                             f"{type(values).__name__} ({values!r:.60}); wrap a single value "
                             "in a list")
    if len(values) == 0:
        raise ParameterError(f"option {name!r} has no values: the domain would be empty; give "
                             "at least one value, or leave the option out")
    return _Factor(configs=tuple({name: v} for v in values))


class Domain:
    """Parameter configurations: ``Domain(a=[1, 2], b=[3])``, ``Domain({'a': [..]})``,
    ``Option('a', [..])``, combined with ``*``, ``+``, ``@`` and ``weight * domain``."""

    def __init__(self, domain: Mapping[str, Any] | Domain | Sequence[Any] | None = None,
                 **options: Any) -> None:
        self._cubes: tuple[_Cube, ...]
        self.n_items: int | None = None
        self.n_reps = 1
        self.seed: int | None = None
        if isinstance(domain, Domain):
            self._cubes = domain._cubes
            self.n_items, self.n_reps, self.seed = domain.n_items, domain.n_reps, domain.seed
            if options:
                self._cubes = (self * Domain(options))._cubes
            return
        if domain is None:
            domain = {}
        if isinstance(domain, Mapping):
            items = {**domain, **options}
            self._cubes = (_Cube(tuple(_values(k, v) for k, v in items.items())),)
        elif isinstance(domain, (list, tuple)):
            if options:
                raise ParameterError("Domain(list, **options): give either a list of domains "
                                     "or options, not both")
            cubes: list[_Cube] = []
            for part in domain:
                cubes.extend(Domain(part)._cubes)
            if not cubes:
                raise ParameterError("Domain([]): the list of domains is empty")
            self._cubes = tuple(cubes)
        else:
            raise ParameterError(f"Domain({domain!r:.60}): give options as keywords, a dict "
                                 "of option lists, another Domain or a list of them")

    @classmethod
    def _of(cls, cubes: Sequence[_Cube], like: Domain | None = None) -> Domain:
        d = cls.__new__(cls)
        d._cubes = tuple(cubes)
        d.n_items, d.n_reps, d.seed = None, 1, None
        if like is not None:
            d.n_items, d.n_reps, d.seed = like.n_items, like.n_reps, like.seed
        return d

    # -- algebra ------------------------------------------------------------------------
    def __mul__(self, other: Any) -> Domain:
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return self._weighted(float(other))
        other = _domain(other, "*")
        cubes = []
        for a in self._cubes:
            for b in other._cubes:
                overlap = set(k for f in a.factors for k in f.keys) & set(
                    k for f in b.factors for k in f.keys)
                if overlap:
                    raise ParameterError(f"Domain * Domain: both sides set {sorted(overlap)}; "
                                         "an option may appear on one side only")
                weight = (None if a.weight is None and b.weight is None
                          else (a.weight or 1.0) * (b.weight or 1.0))
                cubes.append(_Cube(a.factors + b.factors, weight))
        return Domain._of(cubes)

    def __rmul__(self, other: Any) -> Domain:
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return self._weighted(float(other))
        return _domain(other, "*") * self

    def _weighted(self, w: float) -> Domain:
        if not (w > 0 and math.isfinite(w)):
            raise ParameterError(f"weight {w!r}: give a positive finite number")
        return Domain._of([replace(c, weight=(c.weight or 1.0) * w) for c in self._cubes])

    def __add__(self, other: Any) -> Domain:
        return Domain._of(self._cubes + _domain(other, "+")._cubes)

    def __radd__(self, other: Any) -> Domain:
        return _domain(other, "+") + self

    def __matmul__(self, other: Any) -> Domain:
        other = _domain(other, "@")
        for side in (self, other):
            if not side._finite() or any(c.weight is not None for c in side._cubes):
                raise ParameterError("Domain @ Domain zips finite lists of values: samplers "
                                     "and weights cannot be zipped")
        if self.n_reps > 1 or other.n_reps > 1:
            raise ParameterError("Domain @ Domain: set n_reps on the zipped domain, not on "
                                 "its parts")
        left, right = list(self._configs()), list(other._configs())
        if len(left) != len(right):
            raise ParameterError(f"Domain @ Domain needs equal lengths, got {len(left)} and "
                                 f"{len(right)}: give both options the same number of values")
        clash = set(left[0]) & set(right[0]) if left else set()
        if clash:
            raise ParameterError(f"Domain @ Domain: both sides set {sorted(clash)}")
        return Domain._of([_Cube((_Factor(tuple({**a, **b} for a, b in zip(left, right))),))])

    # -- iteration ------------------------------------------------------------------------
    def set_iter_params(self, n_items: int | None = None, n_reps: int = 1,
                        seed: int | None = None) -> Domain:
        """How to iterate: ``n_items`` configs (needed with samplers; cycles a finite
        domain), each ``n_reps`` times, samplers seeded by ``seed``. Returns self."""
        check_optional_int(n_items, "n_items", error=ParameterError)
        check_int(n_reps, "n_reps", error=ParameterError)
        check_optional_int(seed, "seed", least=None, error=ParameterError)
        self.n_items, self.n_reps, self.seed = n_items, n_reps, seed
        return self

    def _finite(self) -> bool:
        return all(c.finite for c in self._cubes)

    @property
    def keys(self) -> list[str]:
        """Every option name, in order of first appearance."""
        return list(dict.fromkeys(k for c in self._cubes for f in c.factors for k in f.keys))

    def _count(self) -> int:
        if self.n_items is not None:
            return self.n_items
        if not self._finite():
            raise ParameterError("this domain has samplers and so no end: set the number of "
                                 "configs with domain.set_iter_params(n_items=N)")
        return sum(c.size for c in self._cubes)

    def __len__(self) -> int:
        return self._count() * self.n_reps

    def _configs(self, seed: int | None = None) -> Iterator[dict[str, Any]]:
        """One pass of configs (no repetitions), ``n_items`` of them if set."""
        rng = np.random.default_rng(self.seed if self.seed is not None else seed)
        stream = self._stream(rng)
        n = self._count()
        if self.n_items is not None and self._finite():
            stream = itertools.chain.from_iterable(itertools.repeat(list(self._stream(rng))))
        return itertools.islice(stream, n)

    def _stream(self, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        """Blocks in order: an unweighted cube alone, consecutive weighted cubes mixed."""
        for weighted, group in itertools.groupby(self._cubes, key=lambda c: c.weight is not None):
            cubes = list(group)
            if not weighted:
                for cube in cubes:
                    yield from cube.configs(rng)
                continue
            streams = [cube.configs(rng) for cube in cubes]
            weights = [c.weight for c in cubes]
            while streams:
                p = np.asarray(weights, dtype=float)
                k = int(rng.choice(len(streams), p=p / p.sum()))
                try:
                    yield next(streams[k])
                except StopIteration:
                    del streams[k], weights[k]

    def grid(self) -> dict[str, list[Any]] | None:
        """The options of a plain grid (one unweighted cube of lists, iterated once), in
        the order ``configs()`` varies them; None for any other domain."""
        if (len(self._cubes) != 1 or self._cubes[0].weight is not None or self.n_reps != 1
                or self.n_items is not None):
            return None
        options: dict[str, list[Any]] = {}
        for f in self._cubes[0].factors:
            if f.sampler is not None or len(f.keys) != 1 or f.keys[0] in options:
                return None
            options[f.keys[0]] = [c[f.keys[0]] for c in f.configs]
        return options

    def configs(self, seed: int | None = None) -> list[dict[str, Any]]:
        """Every config, repetitions last (``repetition`` key when ``n_reps > 1``)."""
        base = list(self._configs(seed))
        if self.n_reps == 1:
            return base
        if any(REPETITION in c for c in base):
            raise ParameterError(f"option {REPETITION!r} is reserved when n_reps > 1: rename it")
        return [{**c, REPETITION: r} for r in range(self.n_reps) for c in base]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.configs())

    def __repr__(self) -> str:
        parts = []
        for c in self._cubes:
            fs = " * ".join(
                f"{f.name}~{f.sampler!r}" if f.sampler is not None
                else (f"{f.keys[0]}={[next(iter(x.values())) for x in f.configs]!r}"
                      if len(f.keys) == 1 else f"zip({', '.join(f.keys)}; {len(f.configs)})")
                for f in c.factors) or "{}"
            parts.append(fs if c.weight is None else f"{c.weight:g}*({fs})")
        return f"Domain({' + '.join(parts)})"


class Option(Domain):
    """One option and its values: ``Option('a', [1, 2])`` is ``Domain(a=[1, 2])``."""

    def __init__(self, name: str, values: Any) -> None:
        super().__init__({name: values})


def _domain(value: Any, op: str) -> Domain:
    if isinstance(value, Domain):
        return value
    if isinstance(value, Mapping):
        return Domain(value)
    raise ParameterError(f"Domain {op} {type(value).__name__}: combine a Domain with another "
                         "Domain, an Option or a dict of option lists")

