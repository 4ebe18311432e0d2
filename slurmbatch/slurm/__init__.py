"""Slurm: submitting plans as array jobs, the tasks that run them, and re-attaching.

``backend`` (the Backend: sbatch through submitit, waiting), ``options`` and ``profiles``
(what is asked of Slurm), ``cluster`` (what the cluster offers: scontrol, sinfo),
``planfile`` (plans on disk), ``scheduler`` (job states: batched sacct/squeue queries),
``status`` (those states combined with the store), ``submissions`` (re-attaching from any
process: status, wait, cancel, retry), ``task`` (inside one array task).
"""
