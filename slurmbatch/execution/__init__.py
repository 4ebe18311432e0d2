"""Execution on this machine: experiments to outcomes (``execute``), a task's experiments
into a sink (``worker``), forked lane processes (``lanes``), and the backends that run a
plan here: ``local`` (lanes, the default) and ``debug`` (in this process).
"""
