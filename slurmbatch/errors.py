"""Exception types: every error names the bad input and how to fix it."""

from __future__ import annotations


class SlurmbatchError(Exception):
    """Base class of every error raised by slurmbatch."""


class ParameterError(SlurmbatchError, ValueError):
    """A run's or experiment's parameters are invalid (unknown, missing, malformed)."""


class IdError(SlurmbatchError, TypeError):
    """A parameter has no stable identity, so no deterministic id can be computed."""


class OptionError(SlurmbatchError, ValueError):
    """An executor, store or batch option is unknown or has an invalid value."""


class StoreError(SlurmbatchError):
    """A results folder or file cannot be used (foreign, unreadable, not writable)."""


class ResultError(SlurmbatchError, TypeError):
    """A run's result cannot be stored natively (and pickling was not allowed)."""


class ExecutorError(SlurmbatchError, RuntimeError):
    """A backend could not execute the plan."""


class BusyError(SlurmbatchError):
    """Another process is running or submitting the same batch right now."""


class ExperimentFailed(SlurmbatchError):
    """Raised with ``raise_errors=True`` at the first failed experiment (after storing it)."""

    def __init__(self, experiment: object, error: str) -> None:
        super().__init__(f"experiment {getattr(experiment, 'id', '?')} failed:\n{error}")
        self.experiment = experiment
        self.error = error
