"""The store: results on disk (or in memory), written crash-safe and read back checked.

``values`` (values ↔ typed leaves), ``table`` (columnar tables), ``segment`` (HDF5 files),
``journal`` (logs of open segments), ``sinks`` (where the worker puts records), ``folder``
(the batch folder and safe file creation).
"""
