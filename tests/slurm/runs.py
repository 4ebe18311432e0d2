"""Run classes of the Slurm tests (pickled by value, as a script's classes would be)."""

from __future__ import annotations

import os
import time

import slurmbatch


def _env() -> dict:
    return {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "lane": os.environ.get("SLURMBATCH_LANE", ""),
            "job": os.environ.get("SLURM_JOB_ID", ""),
            "array_task": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
            "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
            "task_pid": os.getppid()}


class Probe(slurmbatch.Run):
    """Sleeps ``seconds`` and reports where it ran; logs each execution to ``log``."""

    def run(self, x=0, seconds=0.0, log=""):
        if log:
            with open(log, "a") as f:
                f.write(f"{x} {os.getpid()} {os.getppid()}\n")
        t0 = time.time()
        time.sleep(seconds)
        return {"x": x, "t0": t0, "t1": time.time(), **_env()}


def gpu_of_lane() -> str:
    """A research unit: the GPU its lane sees."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def power(a=2, b=3):
    return a ** b


def steps(x):
    for i in range(3):
        yield x + i


def shared(random, log=""):
    """A root unit: logs each call, returns data every branch of its group uses."""
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
    return float(random.normal())


def scaled(value, scale):
    return value * scale
