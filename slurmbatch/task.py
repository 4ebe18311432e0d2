"""Where array tasks submitted by slurmbatch before its restructure find their entry point.

submitit pickled each task's callable by its module path, ``slurmbatch.task.SlurmTask``;
tasks still queued (or requeued) when slurmbatch is upgraded unpickle it from here. The
code lives in ``slurmbatch.slurm.task``.
"""

from .slurm.task import SlurmTask

__all__ = ["SlurmTask"]
