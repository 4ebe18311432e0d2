"""BatchFlow Research 0.10.1 (``batchflow[research]``, with pandas and matplotlib).

Phases (each in a fresh process, cwd a scratch folder):
  plan     Domain + Research + add_callable, then the configs and their ids as the
           research's task queue makes them (``Domain.set_iter_params``, ``next(domain)``,
           ``generate_id``); BatchFlow neither deduplicates nor skips done configs
  run      the same research, ``run(workers=W, dump_results=D, bar=False)`` (its default
           ``parallel=True``: one process per experiment); for D=False also
           ``results.to_df`` filtered by a Domain of the accepted values, and ``results.df``
  collect  a new process: ``Research.load(name).results.df``, then ``results.to_df``
           filtered by the Domain of accepted values (its filters are equality or Domain)
"""

from __future__ import annotations

import time
from typing import Any

from batchflow.research import EC, Domain, Option, Research
from batchflow.research.utils import generate_id
from batchflow.utils_random import make_rng, make_seed_sequence

from . import check, child_main, files_under, grid, query, query_matches


def work(a=0, b=0.0):
    return a * b


def _research(n: int, name: str) -> Research:
    a_vals, b_vals = grid(n)
    return (Research(name=name, domain=Domain(a=a_vals) * Domain(b=b_vals))
            .add_callable(work, a=EC("a"), b=EC("b"), save_to="val"))


def _accepted(n: int) -> Domain:
    """The three conditions as BatchFlow filters them: a Domain of the accepted values."""
    a_vals, b_vals = grid(n)
    q = query(n)
    return (Option("a", [a for a in a_vals if q["A__ge"] <= a <= q["A__le"]])
            * Option("b", [b for b in b_vals if b != q["B__ne"]]))


def plan(n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    research = _research(n, "plan")
    seed = make_seed_sequence(None)
    research.domain.set_iter_params(n_items=None, n_reps=1, repeat_each=None,
                                    create_id_prefix=False, seed=seed)
    rng = make_rng(seed)
    configs = []
    while True:
        try:
            config = next(research.domain)
        except StopIteration:
            break
        config["id"] = generate_id(config, rng, False)
        configs.append(config)
    t1 = time.perf_counter()
    check("configs", len(configs), n)
    return {"define_plan": t1 - t0}


def run(n: int, workers: int, dump: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    research = _research(n, "research")
    research.run(workers=workers, dump_results=dump, bar=False)
    t1 = time.perf_counter()
    out: dict[str, Any] = {"define_run": t1 - t0}
    if not dump:
        # filter first: .df drops 'repetition' etc. from the stored configs, after which
        # Domain filters match nothing
        t0 = time.perf_counter()
        sel = research.results.to_df(domain=_accepted(n))
        out["filter"] = time.perf_counter() - t0
        check("filtered rows", len(sel), query_matches(n))
        t0 = time.perf_counter()
        df = research.results.df
        out["df"] = time.perf_counter() - t0
        check("rows", len(df), n)
        out["files"] = 0
    else:
        out["files"] = files_under("research")
    return out


def collect(n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    research = Research.load("research")
    df = research.results.df
    t1 = time.perf_counter()
    check("rows", len(df), n)
    research = Research.load("research")
    t2 = time.perf_counter()
    sel = research.results.to_df(domain=_accepted(n))
    t3 = time.perf_counter()
    check("filtered rows", len(sel), query_matches(n))
    return {"collect": t1 - t0, "filter": t3 - t2}


if __name__ == "__main__":
    child_main({"plan": plan, "run": run, "collect": collect})
