"""slurmbatch: run large batches of experiments, locally or on Slurm, each exactly once,
with all results in one queryable table.

Quickstart::

    import slurmbatch

    class Square(slurmbatch.Run):
        def run(self, x=0, power=2):
            return {'y': x ** power}

    batch = slurmbatch.Batch('squares')                 # results in _res/squares/
    batch.add_factorial_runs(Square, {'x': [1, 2, 3], 'power': [2, 3]})
    batch()                         # local processes; batch(executor='slurm') on a cluster
    batch.results.df                # id, x, power, y: one row per run
    batch.get_runs_with(x__ge=2, power=2)               # runs by their parameters

Run it again (or from another process) and nothing is recomputed: every run has an id,
the SHA-1 of its class and parameters. ``Research`` runs BatchFlow-style plans (units
over a ``Domain`` of configs, with ``EC``/``O``/``E``/``EP`` expressions) on the same
machinery; ``collect(folder)`` reads any results folder from any later script.

The names below are grouped by purpose in ``__all__``; they are imported on first use,
so ``import slurmbatch`` itself loads neither pandas, h5py nor submitit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    BusyError,
    ExecutorError,
    ExperimentFailed,
    IdError,
    OptionError,
    ParameterError,
    ResultError,
    SlurmbatchError,
    StoreError,
)

if TYPE_CHECKING:
    from .backend import Report
    from .batch import Batch, ResultRun, Run
    from .collector import Collector, collect
    from .contract import Experiment
    from .domain import Domain, Option, Sampler
    from .expressions import EC, EP, E, O
    from .ids import experiment_id, named
    from .plan import Plan, make_plan
    from .research import Research
    from .results import Results
    from .slurm.backend import DryRun
    from .slurm.planfile import PlanRecord
    from .status import Status
    from .study import Study

__version__ = "0.1.0"

# each public name and the module that defines it, grouped by purpose
_DEFINE = {"Batch": "batch", "Run": "batch", "ResultRun": "batch", "Research": "research",
           "Domain": "domain", "Option": "domain", "Sampler": "domain", "EC": "expressions",
           "O": "expressions", "E": "expressions", "EP": "expressions",
           "experiment_id": "ids", "named": "ids"}
_RUN_AND_FOLLOW = {"Study": "study", "Report": "backend", "Status": "status",
                   "PlanRecord": "slurm.planfile", "DryRun": "slurm.backend"}
_READ_RESULTS = {"Results": "results", "collect": "collector", "Collector": "collector"}
_PLAN = {"Experiment": "contract", "Plan": "plan", "make_plan": "plan"}
_LAZY = {**_DEFINE, **_RUN_AND_FOLLOW, **_READ_RESULTS, **_PLAN}

__all__ = [  # noqa: RUF022 - grouped by purpose, not sorted
    # define experiments: the Batch/Run and Research styles, domains, expressions, ids
    "Batch", "Run", "ResultRun", "Research", "Domain", "Option", "Sampler",
    "EC", "O", "E", "EP", "experiment_id", "named",
    # run them and follow submissions: what running, status and submitting return
    "Study", "Report", "Status", "PlanRecord", "DryRun",
    # read results from any process
    "Results", "collect", "Collector",
    # the planner and its records
    "Experiment", "Plan", "make_plan",
    # errors
    "SlurmbatchError", "ParameterError", "IdError", "OptionError", "StoreError",
    "ResultError", "ExecutorError", "BusyError", "ExperimentFailed",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'slurmbatch' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
