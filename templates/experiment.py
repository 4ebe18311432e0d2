"""A starter experiment script: copy it, change the Run class and the grid, run it.

    python experiment.py            # local processes on this machine
    python experiment.py debug      # in this process (breakpoints and prints work)

Running it again computes only what is missing; results are in _res/experiment/.
"""

import sys

import numpy as np

import slurmbatch


class Experiment(slurmbatch.Run):
    kind = "experiment-v1"  # change it when run() computes something different

    def run(self, lr=0.1, steps=100, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=10)
        for _ in range(steps):
            x -= lr * x  # gradient descent on |x|^2 / 2
        return {"loss": float(0.5 * x @ x), "x": x}


if __name__ == "__main__":
    batch = slurmbatch.Batch("experiment")
    batch.add_factorial_runs(Experiment, {"lr": [0.01, 0.1, 0.5], "steps": [10, 100],
                                          "seed": list(range(5))})
    batch(executor=sys.argv[1] if len(sys.argv) > 1 else "local")
    df = batch.results.df
    print(df.groupby(["lr", "steps"])["loss"].mean().to_string())
