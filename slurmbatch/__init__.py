"""slurmbatch: run large batches of experiments locally or on Slurm, exactly once each."""

from .batch import Batch, ResultRun, Run
from .collect import Collector, collect
from .errors import (
                     ExecutorError,
                     ExperimentFailed,
                     IdError,
                     OptionError,
                     ParameterError,
                     ResultError,
                     SlurmbatchError,
                     StoreError,
)
from .ids import experiment_id, named
from .plan import Plan, Resources, make_plan
from .results import Results

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "Collector",
    "ExecutorError",
    "ExperimentFailed",
    "IdError",
    "OptionError",
    "ParameterError",
    "Plan",
    "Resources",
    "ResultError",
    "ResultRun",
    "Results",
    "Run",
    "SlurmbatchError",
    "StoreError",
    "collect",
    "experiment_id",
    "make_plan",
    "named",
]
