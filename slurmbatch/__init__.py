"""slurmbatch: run large batches of experiments locally or on Slurm, exactly once each."""

from .batch import Batch, ResultRun, Run
from .collect import Collector, collect
from .domain import Domain, Option, Sampler
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
from .expressions import EC, EP, E, O
from .ids import experiment_id, named
from .plan import Plan, Resources, make_plan
from .research import Research
from .results import Results
from .study import Study

__version__ = "0.1.0"

__all__ = [
                     "EC",
                     "EP",
                     "Batch",
                     "BusyError",
                     "Collector",
                     "Domain",
                     "E",
                     "ExecutorError",
                     "ExperimentFailed",
                     "IdError",
                     "O",
                     "Option",
                     "OptionError",
                     "ParameterError",
                     "Plan",
                     "Research",
                     "Resources",
                     "ResultError",
                     "ResultRun",
                     "Results",
                     "Run",
                     "Sampler",
                     "SlurmbatchError",
                     "StoreError",
                     "Study",
                     "collect",
                     "experiment_id",
                     "make_plan",
                     "named",
]
