"""Slurm submission options: parsing and validation, before anything is written or submitted.

Every option has one name (``*_per_experiment`` is accepted for ``*_per_run``); an
unknown name or a bad value raises OptionError naming it and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..checks import check_int
from ..errors import OptionError

# sbatch's long options (Slurm 22.05, and those later versions added): a key of
# ``sbatch={...}`` is written as ``--key``, which sbatch reads as the option it names or
# abbreviates, so keys are resolved against this table as sbatch would
SBATCH_OPTIONS = frozenset("""
account acctg-freq array batch begin bb bbf chdir cluster cluster-constraint clusters comment
constraint container context contiguous core-spec cores-per-socket cpu-freq cpus-per-gpu
cpus-per-task deadline delay-boot dependency distribution error exclude exclusive export
export-file extra-node-info get-user-env gid gpu-bind gpu-freq gpus gpus-per-node
gpus-per-socket gpus-per-task gres gres-flags help hint hold ignore-pbs input job-name
kill-on-invalid-dep licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu
mem-per-gpu mincpus network nice no-kill no-requeue nodefile nodelist nodes ntasks
ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket ntasks-per-tres oom-kill-step
open-mode output overcommit oversubscribe parsable partition power prefer priority profile
propagate qos quiet reboot requeue reservation segment signal sockets-per-node spread-job
switches tasks-per-node test-only thread-spec threads-per-core time time-min tmp tres-bind
tres-per-task uid usage use-min-nodes verbose version wait wait-all-nodes wckey wrap
""".split())
# sbatch's short flags and the long options they stand for
SBATCH_SHORT = {
    "A": "account", "a": "array", "B": "extra-node-info", "b": "begin", "C": "constraint",
    "c": "cpus-per-task", "D": "chdir", "d": "dependency", "e": "error", "F": "nodefile",
    "G": "gpus", "H": "hold", "h": "help", "i": "input", "J": "job-name", "k": "no-kill",
    "L": "licenses", "M": "clusters", "m": "distribution", "N": "nodes", "n": "ntasks",
    "O": "overcommit", "o": "output", "p": "partition", "Q": "quiet", "q": "qos",
    "S": "core-spec", "s": "oversubscribe", "t": "time", "u": "usage", "V": "version",
    "v": "verbose", "W": "wait", "w": "nodelist", "x": "exclude"}

_COPIES = ("it changes how many copies of a task run, and every copy would run the same "
           "experiments: slurmbatch runs one copy per array task; size tasks with "
           "runs_per_task, lanes_per_task or max_parallel_tasks instead")
_LOGS = "slurmbatch writes each task's log under <batch>/plans/<plan>/logs/"
_NO_SUBMIT = ("sbatch would then not submit and print a job id, which slurmbatch needs: "
              "to see the scripts, use dry_run=True")
_GPUS = "use gpus_per_run= (and gpu_syntax= 'gres' or 'gpus' for how it is asked)"
# sbatch directives slurmbatch sets itself or that change how many copies of a task run:
# an extra ``sbatch={...}`` may not give them (option -> what to do instead)
RESERVED_SBATCH: Mapping[str, str] = {
    **dict.fromkeys(("ntasks", "nodes", "ntasks-per-node", "tasks-per-node",
                     "ntasks-per-core", "ntasks-per-socket", "ntasks-per-gpu",
                     "ntasks-per-tres"), _COPIES),
    "array": "slurmbatch makes the arrays itself: use runs_per_task and max_parallel_tasks",
    "wrap": "slurmbatch writes the task's command itself: put shell lines in setup=",
    "time": "use time=", "partition": "use partition=", "account": "use account=",
    "qos": "use qos=",
    **dict.fromkeys(("gres", "gpus", "gpus-per-task", "gpus-per-node", "gpus-per-socket",
                     "tres-per-task"), _GPUS),
    **dict.fromkeys(("cpus-per-task", "cpus-per-gpu"), "use cpus_per_run="),
    **dict.fromkeys(("mem", "mem-per-cpu", "mem-per-gpu"), "use mem_per_run="),
    **dict.fromkeys(("output", "error", "open-mode"), _LOGS),
    "job-name": "slurmbatch names the jobs sb-<batch name>",
    "wckey": "slurmbatch marks its jobs with wckey=slurmbatch",
    "signal": "use signal_delay= (seconds before the time limit when USR2 arrives)",
    **dict.fromkeys(("requeue", "no-requeue"),
                    "tasks requeue themselves at their time limit: use max_requeues= (0: "
                    "record the runs left as failed instead)"),
    **dict.fromkeys(("export", "export-file"),
                    "tasks need the submitting environment: put shell lines in setup="),
    **dict.fromkeys(("parsable", "wait", "test-only", "help", "usage", "version"), _NO_SUBMIT),
    **dict.fromkeys(("clusters", "cluster"),
                    "status, wait, cancel and retry ask this cluster's scheduler: submit "
                    "from a login node of the other cluster"),
}
_SBATCH_KEY = re.compile(r"[a-z][a-z0-9-]{0,63}")  # used with fullmatch
_NAME = re.compile(r"[A-Za-z0-9_.,+:=@-]{1,128}")  # partition, account, qos; fullmatch
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400}
_MEM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)
_ALIASES = {"gpus_per_experiment": "gpus_per_run", "cpus_per_experiment": "cpus_per_run",
            "mem_per_experiment": "mem_per_run", "experiments_per_task": "runs_per_task",
            "time_per_experiment": "time_per_run"}


_MAX_SECONDS = 366 * 86400  # a year: longer is a typo (and overflows Slurm's fields)
_MAX_MB = 2**40  # an exabyte
_MAX_GPUS = 1024  # per run, and runs sharing one GPU


def parse_duration(value: Any, name: str) -> int:
    """Seconds from minutes (a number), Slurm's [D-]HH:MM:SS / MM:SS, or '90min', '2h30m'."""
    bad = OptionError(f"{name}={value!r}: give minutes (e.g. 30), Slurm's 'HH:MM:SS' or "
                      "'D-HH:MM:SS', or units like '90min', '2h', '1h30m', '45s'")
    minutes = _number(value, bad)
    if minutes is not None:
        if minutes != minutes or minutes <= 0 or minutes == math.inf:
            raise bad
        if minutes > _MAX_SECONDS / 60:
            raise _too_long(value, name)
        return math.ceil(minutes * 60)
    if not isinstance(value, str) or not value.strip():
        raise bad
    text = value.strip().lower()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text) * 60
    elif m and (":" in text or "-" in text):
        days, b, c = (int(x) if x else None for x in m.group(1, 3, 4))
        a = int(m.group(2))  # always there
        if c is not None:  # [D-]HH:MM:SS
            seconds = a * 3600 + (b or 0) * 60 + c
        elif b is not None:  # [D-]HH:MM, or MM:SS without a day
            seconds = a * 3600 + b * 60 if days is not None else a * 60 + b
        else:  # D-HH
            seconds = a * 3600
        seconds += (days or 0) * 86400
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text)
        if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
            raise bad
        seconds = 0.0
        for number, unit in parts:
            if unit not in _UNITS:
                raise bad
            seconds += float(number) * _UNITS[unit]
    if not seconds > 0:
        raise bad
    if not seconds <= _MAX_SECONDS:
        raise _too_long(value, name)
    return math.ceil(seconds)


def _number(value: Any, bad: OptionError) -> float | None:
    """``value`` if it is a number (a bool is refused with ``bad``); None for anything else."""
    if isinstance(value, bool):
        raise bad
    return value if isinstance(value, int | float) else None


def _too_long(value: Any, name: str) -> OptionError:
    return OptionError(f"{name}={value!r:.60}: longer than a year; give a duration of at "
                       "most 366 days")


def parse_mem(value: Any, name: str) -> int:
    """Megabytes from an integer (MB) or '4G', '512M', '1.5GB'."""
    bad = OptionError(f"{name}={value!r}: give megabytes (e.g. 4000) or a size like '4G', "
                      "'512M'")
    mb = _number(value, bad)
    if mb is None:
        m = _MEM.match(value) if isinstance(value, str) else None
        if not m:
            raise bad
        factor = {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024**2}[m.group(2).lower()]
        mb = float(m.group(1)) * factor
    if mb != mb or mb <= 0:  # NaN, zero, negative
        raise bad
    if mb > _MAX_MB:
        raise OptionError(f"{name}={value!r:.60}: more than an exabyte; give megabytes or "
                          "a size like '4G'")
    return math.ceil(mb)


def _safe_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise OptionError(f"{name}={value!r}: give a Slurm name of letters, digits and "
                          "_.,+:=@- (no spaces or newlines)")
    return value


def _shell_lines(value: Any, name: str) -> tuple[str, ...]:
    lines = [value] if isinstance(value, str) else value
    if not isinstance(lines, (list, tuple)) or not all(isinstance(x, str) for x in lines):
        raise OptionError(f"{name}={value!r}: give shell lines as a string or a list of strings")
    out = []
    for line in lines:
        if "\x00" in line:
            raise OptionError(f"{name}: a line contains a NUL character, which no shell line "
                              "holds: remove it")
        for part in line.splitlines():
            if part.lstrip().startswith("#SBATCH"):
                raise OptionError(f"{name}: {part!r} is an #SBATCH directive; pass directives "
                                  "with sbatch={'key': 'value'}")
            out.append(part)
    return tuple(out)


def _sbatch_name(key: Any) -> str:
    """The sbatch option an ``sbatch={...}`` key names, as sbatch reads ``--key``; refuses
    keys slurmbatch owns or that sbatch would refuse or misread."""
    if not isinstance(key, str):
        raise OptionError(f"sbatch key {key!r}: give a directive name like 'constraint' "
                          "(letters, digits and '-')")
    k = key.lstrip("-").replace("_", "-")
    how = ""
    if k in SBATCH_SHORT:
        name = SBATCH_SHORT[k]
        if name not in RESERVED_SBATCH:
            raise OptionError(f"sbatch key {key!r} is the short flag -{k}: give its long name "
                              f"{name!r} (directives are written as --name=value)")
        how = f"the short flag -{k}, "
    elif not _SBATCH_KEY.fullmatch(k):
        raise OptionError(f"sbatch key {key!r}: give a directive name like 'constraint' "
                          "(lower-case letters, digits and '-')")
    elif k in SBATCH_OPTIONS:
        name = k
    else:  # sbatch takes any unambiguous prefix of a long option: 'parti' is --partition
        found = sorted(o for o in SBATCH_OPTIONS if o.startswith(k))
        if len(found) > 1:
            mine = [o for o in found if o in RESERVED_SBATCH]
            owned = (f"; {', '.join('--' + o for o in mine)} slurmbatch sets itself"
                     if mine else "")
            raise OptionError(f"sbatch key {key!r} abbreviates several sbatch options "
                              f"({', '.join('--' + o for o in found)}), so sbatch would refuse "
                              f"it: give the full name{owned}")
        if not found:
            return k  # not in this table (a newer sbatch's option?): sbatch decides
        name, how = found[0], "read by sbatch as "
    if name in RESERVED_SBATCH:
        raise OptionError(f"sbatch key {key!r} ({how}--{name}) is not for sbatch={{...}}: "
                          f"{RESERVED_SBATCH[name]}")
    return name


def _sbatch_extra(value: Any) -> tuple[tuple[str, str | bool], ...]:
    if not isinstance(value, Mapping):
        raise OptionError(f"sbatch={value!r}: give a dict of extra directives, e.g. "
                          "{'constraint': 'a100', 'exclusive': True}")
    out = []
    seen: dict[str, Any] = {}
    for key, v in value.items():
        if v is not True:
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise OptionError(f"sbatch[{key!r}]={v!r}: give a string, a number or True")
            if any(c in str(v) for c in "\n\r\x00") or "#SBATCH" in str(v).upper():
                raise OptionError(f"sbatch[{key!r}]={v!r}: a value may not contain newlines "
                                  "or #SBATCH (it would add directives): give the value on "
                                  "one line")
        k = _sbatch_name(key)
        if k in seen:
            raise OptionError(f"sbatch keys {seen[k]!r} and {key!r} name the same directive "
                              f"--{k}: keep one")
        seen[k] = key
        out.append((k, True if v is True else str(v)))
    return tuple(sorted(out))


@dataclass(frozen=True)
class SlurmOptions:
    """Validated options of a Slurm submission (see docs/slurm.md)."""

    gpus_per_run: float = 0.0
    cpus_per_run: int = 1
    mem_per_run: int | None = None  # MB
    runs_per_task: int | None = None
    time_per_run: int | None = None  # seconds, to size tasks from the time limit
    partition: str | None = None
    time: int = 3600  # task time limit, seconds
    max_parallel_tasks: int | None = None
    account: str | None = None
    qos: str | None = None
    setup: tuple[str, ...] = ()
    sbatch: tuple[tuple[str, str | bool], ...] = ()
    gpu_syntax: str = "gres"  # '--gres=gpu:N' or '--gpus-per-task=N'
    lanes_per_task: int | None = None
    signal_delay: int = 90  # seconds before the time limit when USR2 arrives
    max_requeues: int = 3
    profile: str | None = field(default=None, compare=False)

    # -- derived ---------------------------------------------------------------------
    @property
    def lanes(self) -> int:
        """Experiments a task runs at once."""
        if self.lanes_per_task is not None:
            return self.lanes_per_task
        if 0 < self.gpus_per_run < 1:
            return round(1 / self.gpus_per_run)
        return 1

    @property
    def task_gpus(self) -> int:
        return math.ceil(self.gpus_per_run * self.lanes - 1e-9) if self.gpus_per_run else 0

    @property
    def packing(self) -> int | None:
        """Experiments per task: given, or as many as fit the time limit; None: sized by
        the planner to fill the partition (see ``SlurmBackend.plan``)."""
        if self.runs_per_task is not None:
            return self.runs_per_task
        if self.time_per_run is not None:
            budget = max(self.time - self.signal_delay - 60, self.time * 0.5)
            return max(1, int(budget / self.time_per_run) * self.lanes)
        return None

    def lane_devices(self, visible: list[str]) -> list[str | None]:
        """CUDA_VISIBLE_DEVICES of each lane, from the GPUs Slurm gave the task."""
        if not self.gpus_per_run:
            return [None] * self.lanes
        if len(visible) < self.task_gpus:
            raise OptionError(f"the task sees {len(visible)} GPU(s) ({','.join(visible)}) but "
                              f"its lanes need {self.task_gpus}: check the profile's gpu_syntax")
        if self.gpus_per_run >= 1:
            g = round(self.gpus_per_run)
            return [",".join(visible[i * g:(i + 1) * g]) for i in range(self.lanes)]
        share = self.lanes / self.task_gpus  # lanes per GPU
        return [visible[int(i // share)] for i in range(self.lanes)]

    def resources(self) -> dict[str, Any]:
        """What one task asks Slurm for (keys are submitit's SlurmExecutor parameters)."""
        # one copy of the task (--ntasks-per-node=1 on --nodes=1): sbatch also needs it
        # to accept --gpus-per-task
        params: dict[str, Any] = {"nodes": 1, "ntasks_per_node": 1,
                                  "cpus_per_task": self.cpus_per_run * self.lanes,
                                  "time": math.ceil(self.time / 60),
                                  "signal_delay_s": self.signal_delay}
        if self.task_gpus:
            if self.gpu_syntax == "gres":
                params["gres"] = f"gpu:{self.task_gpus}"
            else:
                params["gpus_per_task"] = self.task_gpus
        if self.mem_per_run is not None:
            params["mem"] = f"{self.mem_per_run * self.lanes}M"
        for key in ("partition", "account", "qos"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        if self.setup:
            params["setup"] = list(self.setup)
        extra: dict[str, Any] = {"requeue": True}
        extra.update(dict(self.sbatch))
        params["additional_parameters"] = extra
        return params

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SlurmOptions:
        """Back from ``dataclasses.asdict`` after a JSON round trip (lists -> tuples)."""
        d = dict(d)
        d["setup"] = tuple(d.get("setup", ()))
        d["sbatch"] = tuple(tuple(kv) for kv in d.get("sbatch", ()))
        return cls(**d)

    def describe(self) -> str:
        gpus = f", {self.gpus_per_run:g} GPU per run" if self.gpus_per_run else ""
        packing = (f"{self.packing} runs per task" if self.packing is not None
                   else "runs per task sized to fill the partition")
        return (f"{packing}, {self.lanes} at a time{gpus}, "
                f"{self.cpus_per_run * self.lanes} CPU(s), time limit {self.time // 60} min")


OPTION_NAMES = tuple(f.name for f in fields(SlurmOptions))


def make_options(given: Mapping[str, Any], defaults: Mapping[str, Any] | None = None,
                 base: SlurmOptions | None = None) -> SlurmOptions:
    """Validated options from ``given`` over ``defaults`` (e.g. a cluster profile), over
    ``base`` (already validated options, e.g. those of an earlier plan)."""
    merged: dict[str, Any] = {}
    for source in (defaults or {}), given:
        for key, value in source.items():
            name = _ALIASES.get(key, key)
            if name not in OPTION_NAMES:
                valid = ", ".join(n for n in OPTION_NAMES if n != "profile")
                raise OptionError(f"unknown Slurm option {key!r}; valid options: {valid} "
                                  f"(and {', '.join(_ALIASES)})")
            if key != name and name in source:
                raise OptionError(f"{key!r} and {name!r} are the same option: give one")
            merged[name] = value
    return _validate(merged, base or SlurmOptions())


def _validate(m: dict[str, Any], base: SlurmOptions) -> SlurmOptions:
    out: dict[str, Any] = {}
    if "gpus_per_run" in m and m["gpus_per_run"] is not None:
        g = m["gpus_per_run"]
        if (isinstance(g, bool) or not isinstance(g, (int, float))
                or not (g == 0 or 1 / _MAX_GPUS <= g <= _MAX_GPUS)):
            raise OptionError(f"gpus_per_run={g!r}: give 0 (CPU only), a whole number of GPUs "
                              f"(at most {_MAX_GPUS}), or a fraction 1/k (0.5, 0.25; k at most "
                              f"{_MAX_GPUS}) to run k experiments per GPU")
        if 0 < g < 1 and abs(1 / g - round(1 / g)) > 1e-6:
            raise OptionError(f"gpus_per_run={g!r}: a fraction must be 1/k (0.5, 0.25, "
                              "0.2, ...) so that k experiments share one GPU")
        if g >= 1 and g != int(g):
            raise OptionError(f"gpus_per_run={g!r}: above 1, give a whole number of GPUs")
        out["gpus_per_run"] = float(g)
    if m.get("cpus_per_run") is not None:
        out["cpus_per_run"] = check_int(m["cpus_per_run"], "cpus_per_run")
    if m.get("mem_per_run") is not None:
        out["mem_per_run"] = parse_mem(m["mem_per_run"], "mem_per_run")
    if m.get("runs_per_task") is not None:
        out["runs_per_task"] = check_int(m["runs_per_task"], "runs_per_task")
    if m.get("time_per_run") is not None:
        out["time_per_run"] = parse_duration(m["time_per_run"], "time_per_run")
    for key in ("partition", "account", "qos"):
        if m.get(key) is not None:
            out[key] = _safe_name(m[key], key)
    if m.get("time") is not None:
        out["time"] = parse_duration(m["time"], "time")
        if out["time"] < 60:
            raise OptionError(f"time={m['time']!r}: Slurm's limits are whole minutes; give at "
                              "least 1 minute")
    if m.get("max_parallel_tasks") is not None:
        out["max_parallel_tasks"] = check_int(m["max_parallel_tasks"], "max_parallel_tasks")
    if m.get("setup") is not None:
        out["setup"] = _shell_lines(m["setup"], "setup")
    if m.get("sbatch") is not None:
        out["sbatch"] = _sbatch_extra(m["sbatch"])
    if m.get("gpu_syntax") is not None:
        if m["gpu_syntax"] not in ("gres", "gpus"):
            raise OptionError(f"gpu_syntax={m['gpu_syntax']!r}: choose 'gres' "
                              "(--gres=gpu:N) or 'gpus' (--gpus-per-task=N)")
        out["gpu_syntax"] = m["gpu_syntax"]
    if m.get("lanes_per_task") is not None:
        out["lanes_per_task"] = check_int(m["lanes_per_task"], "lanes_per_task")
    if m.get("signal_delay") is not None:
        d = m["signal_delay"]  # plain numbers are seconds here
        out["signal_delay"] = parse_duration(f"{d}s" if isinstance(d, (int, float))
                                             and not isinstance(d, bool) else d, "signal_delay")
    if m.get("max_requeues") is not None:
        out["max_requeues"] = check_int(m["max_requeues"], "max_requeues", least=0)
    if m.get("profile") is not None:
        out["profile"] = m["profile"]
    opts = replace(base, **out)
    if opts.lanes_per_task is not None and 0 < opts.gpus_per_run < 1:
        k = round(1 / opts.gpus_per_run)
        if opts.lanes_per_task % k:
            raise OptionError(f"lanes_per_task={opts.lanes_per_task} with gpus_per_run="
                              f"{opts.gpus_per_run:g}: give a multiple of {k} so whole GPUs "
                              "are shared")
    if opts.signal_delay >= opts.time:
        raise OptionError(f"signal_delay={opts.signal_delay}s is not shorter than the time "
                          f"limit ({opts.time}s): give a longer time or a shorter delay")
    return opts

