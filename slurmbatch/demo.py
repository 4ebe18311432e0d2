"""The demo sweep: Monte Carlo estimates of pi over sample sizes and seeds."""

from __future__ import annotations

import numpy as np

from .batch import Batch, Run


class PiEstimate(Run):
    """Estimate pi from ``n`` random points in the unit square."""

    kind = "slurmbatch.demo.PiEstimate"

    def run(self, n: int = 1000, seed: int = 0) -> dict[str, float]:
        rng = np.random.default_rng(seed)
        xy = rng.random((n, 2))
        inside = int(np.count_nonzero((xy**2).sum(axis=1) <= 1.0))
        estimate = 4.0 * inside / n
        return {"pi": estimate, "error": abs(estimate - np.pi), "inside": inside}


def demo_batch(path: str = "_res", name: str = "demo", seeds: int = 20) -> Batch:
    """A batch of ``5 x seeds`` runs (sample sizes 10..100000)."""
    batch = Batch(name, path)
    batch.add_factorial_runs(PiEstimate, {"n": [10, 100, 1000, 10_000, 100_000],
                                          "seed": list(range(seeds))})
    return batch
