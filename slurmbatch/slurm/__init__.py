"""Slurm: submitting plans as array jobs, the tasks that run them, and re-attaching.

``backend`` (the Backend), ``options`` and ``profiles`` (what is asked of Slurm),
``planfile`` (plans on disk), ``status`` (scheduler queries combined with the store),
``task`` (inside one array task).
"""
