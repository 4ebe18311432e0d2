"""Slurm options (slurmbatch/slurm/options.py): durations, sizes, GPU sharing, packing,
sbatch extras, merging, round trips."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slurmbatch.errors import OptionError
from slurmbatch.slurm.options import (
    OPTION_NAMES,
    RESERVED_SBATCH,
    SBATCH_OPTIONS,
    SBATCH_SHORT,
    SlurmOptions,
    make_options,
    parse_duration,
    parse_mem,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None)


# -- parse_duration ---------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "seconds"), [
    (30, 1800), (1.5, 90), ("30", 1800), ("2.5", 150),
    ("1:30:00", 5400), ("01:00:05", 3605), ("10:00", 600), ("30:15", 1815),
    ("2-00:00:00", 172800), ("1-12:30:00", 131400), ("1-12", 129600), ("2-0", 172800),
    ("90min", 5400), ("2h30m", 9000), ("1h 30min", 5400), ("45s", 45), ("2h", 7200),
    ("1d", 86400), (" 1H30M ", 5400),
])
def test_parse_duration_accepts_minutes_slurm_forms_and_units(value: object, seconds: int) -> None:
    assert parse_duration(value, "time") == seconds


@pytest.mark.parametrize("bad", ["soon", "", "   ", 0, -1, True, None, "1x", float("nan"),
                                 float("inf"), "0", "0:00", "1h-", "h", [30]])
def test_parse_duration_rejects_with_option_name_and_accepted_forms(bad: object) -> None:
    with pytest.raises(OptionError) as err:
        parse_duration(bad, "time_per_run")
    msg = str(err.value)
    assert msg.startswith("time_per_run=")
    assert "HH:MM:SS" in msg and "D-HH:MM:SS" in msg and "90min" in msg and "minutes" in msg


# -- parse_mem --------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "mb"), [
    (4000, 4000), ("4G", 4096), ("512M", 512), ("1.5GB", 1536), ("2048k", 2), ("4000", 4000),
    ("1T", 1024**2), ("2GiB", 2048), ("8g", 8192), (0.5, 1),
])
def test_parse_mem(value: object, mb: int) -> None:
    assert parse_mem(value, "mem_per_run") == mb


@pytest.mark.parametrize("bad", ["4 apples", 0, -5, True, "", "G", "-4G", None, "0k",
                                 float("nan")])
def test_parse_mem_rejects(bad: object) -> None:
    with pytest.raises(OptionError, match="mem_per_run="):
        parse_mem(bad, "mem_per_run")


# -- GPUs and lanes ---------------------------------------------------------------------------
@pytest.mark.parametrize("g", [0, 1, 2, 0.5, 0.25, 0.2])
def test_gpus_per_run_accepted(g: float) -> None:
    assert make_options({"gpus_per_run": g}).gpus_per_run == float(g)


@pytest.mark.parametrize("bad", [-1, 0.3, 1.5, float("inf"), float("nan"), True, "1"])
def test_gpus_per_run_rejected(bad: object) -> None:
    with pytest.raises(OptionError, match="gpus_per_run="):
        make_options({"gpus_per_run": bad})


def test_fractional_gpus_make_lanes_on_shared_gpus() -> None:
    quarter = make_options({"gpus_per_run": 0.25})
    assert (quarter.lanes, quarter.task_gpus) == (4, 1)
    assert quarter.lane_devices(["3"]) == ["3"] * 4
    fifth = make_options({"gpus_per_run": 0.2})
    assert (fifth.lanes, fifth.task_gpus) == (5, 1)

    two = make_options({"gpus_per_run": 2, "lanes_per_task": 2})
    assert (two.lanes, two.task_gpus) == (2, 4)
    assert two.lane_devices(["0", "1", "2", "3"]) == ["0,1", "2,3"]

    half = make_options({"gpus_per_run": 0.5, "lanes_per_task": 4})
    assert (half.lanes, half.task_gpus) == (4, 2)
    assert half.lane_devices(["a", "b"]) == ["a", "a", "b", "b"]


def test_lanes_must_share_whole_gpus() -> None:
    with pytest.raises(OptionError, match="multiple of 2"):
        make_options({"gpus_per_run": 0.5, "lanes_per_task": 3})


def test_lane_devices_needs_enough_visible_gpus() -> None:
    opts = make_options({"gpus_per_run": 1, "lanes_per_task": 2})
    with pytest.raises(OptionError, match=r"sees 1 GPU.*need 2.*gpu_syntax"):
        opts.lane_devices(["0"])
    with pytest.raises(OptionError):
        make_options({"gpus_per_run": 0.25}).lane_devices([])


def test_cpu_only_lanes_have_no_device() -> None:
    assert SlurmOptions().lane_devices(["0", "1"]) == [None]
    assert make_options({"lanes_per_task": 3}).lane_devices([]) == [None] * 3
    assert SlurmOptions().task_gpus == 0


# -- resources --------------------------------------------------------------------------------
def test_resources_gres_cpus_mem_time_and_names() -> None:
    opts = make_options({"gpus_per_run": 0.25, "cpus_per_run": 2, "mem_per_run": "1G",
                         "time": "1:30", "signal_delay": 30, "partition": "gpu",
                         "account": "lab", "qos": "high",
                         "sbatch": {"constraint": "a100", "exclusive": True},
                         "setup": "module load cuda"})
    res = opts.resources()
    assert res["gres"] == "gpu:1" and "gpus_per_task" not in res
    assert res["cpus_per_task"] == 8
    assert res["mem"] == "4096M"
    assert res["time"] == 2  # 90 s, rounded up to whole minutes
    assert (res["partition"], res["account"], res["qos"]) == ("gpu", "lab", "high")
    assert res["setup"] == ["module load cuda"]
    assert res["signal_delay_s"] == 30
    assert res["additional_parameters"] == {"requeue": True, "constraint": "a100",
                                            "exclusive": True}


def test_resources_gpus_syntax_and_cpu_only() -> None:
    res = make_options({"gpus_per_run": 2, "gpu_syntax": "gpus"}).resources()
    assert res["gpus_per_task"] == 2 and "gres" not in res
    cpu = SlurmOptions().resources()
    assert "gres" not in cpu and "gpus_per_task" not in cpu and "mem" not in cpu
    assert "partition" not in cpu and "setup" not in cpu
    assert cpu["additional_parameters"] == {"requeue": True}
    assert cpu["time"] == 60 and cpu["cpus_per_task"] == 1
    with pytest.raises(OptionError, match="gpu_syntax"):
        make_options({"gpu_syntax": "gpu"})


# -- packing ----------------------------------------------------------------------------------
def test_packing_given_wins_over_time_per_run() -> None:
    assert make_options({"runs_per_task": 7, "time_per_run": 1}).packing == 7


def test_packing_from_time_limit() -> None:
    # budget = max(time - signal_delay - 60, time / 2); runs = int(budget / time_per_run) * lanes
    opts = make_options({"time": 60, "time_per_run": 10})  # (3600 - 90 - 60) / 600 -> 5
    assert opts.packing == 5
    assert make_options({"time": 60, "time_per_run": 10, "gpus_per_run": 0.5}).packing == 10
    short = make_options({"time": 5, "time_per_run": "1min", "signal_delay": 60})
    assert short.packing == 3  # max(300 - 120, 150) / 60
    tight = make_options({"time": 5, "time_per_run": "1min", "signal_delay": 240})
    assert tight.packing == 2  # max(0, 150) / 60
    assert make_options({"time": 5, "time_per_run": 60}).packing == 1  # never 0


def test_packing_default_is_left_to_the_planner() -> None:
    assert SlurmOptions().packing is None
    assert "sized to fill the partition" in make_options({"gpus_per_run": 0.25}).describe()
    assert "7 runs per task" in make_options({"runs_per_task": 7}).describe()


# -- sbatch extras ----------------------------------------------------------------------------
def test_sbatch_keys_normalised_and_values_stringified() -> None:
    opts = make_options({"sbatch": {"mail_type": "END", "--constraint": "a100", "nice": 5,
                                    "exclusive": True}})
    assert opts.sbatch == (("constraint", "a100"), ("exclusive", True), ("mail-type", "END"),
                           ("nice", "5"))


COPIES = ("ntasks", "nodes", "ntasks-per-node", "tasks-per-node", "ntasks-per-core",
          "ntasks-per-socket", "ntasks-per-gpu", "ntasks-per-tres", "array")


def spellings(name: str) -> list[str]:
    """Every way a user may write an sbatch option as a key: dashes or underscores, leading
    dashes, the short flag, and each abbreviation sbatch resolves to it alone."""
    forms = {name, name.replace("-", "_")}
    forms |= {d + f for f in set(forms) for d in ("-", "--")}
    forms |= {s for s, long in SBATCH_SHORT.items() if long == name}
    forms |= {"-" + s for s, long in SBATCH_SHORT.items() if long == name}
    forms |= {name[:i] for i in range(2, len(name))
              if [o for o in SBATCH_OPTIONS if o.startswith(name[:i])] == [name]}
    return sorted(forms)


RESERVED_CASES = [(name, key) for name in sorted(RESERVED_SBATCH) for key in spellings(name)]


@pytest.mark.parametrize(("name", "key"), RESERVED_CASES)
def test_sbatch_keys_slurmbatch_owns_are_refused_in_every_spelling(name: str, key: str) -> None:
    """ntasks, -n, N, ntasks_per_node, --tasks-per-node, 'arr', 'gre', wrap, ... are
    refused naming the key, the option sbatch reads and what to give instead."""
    with pytest.raises(OptionError) as err:
        make_options({"sbatch": {"constraint": "a100", key: "2"}})
    text = str(err.value)
    assert repr(key) in text and f"--{name})" in text, text
    assert text.endswith(RESERVED_SBATCH[name]), text


def test_copies_changing_directives_are_all_reserved_and_say_why() -> None:
    assert len(RESERVED_CASES) > 300
    for name in COPIES:
        assert name in RESERVED_SBATCH
    for name in COPIES[:-1]:
        assert "copies" in RESERVED_SBATCH[name] and "runs_per_task" in RESERVED_SBATCH[name]
    for key in ("n", "-n", "N", "--N", "ntasks_per_node", "tasks_per_node", "--ntasks"):
        with pytest.raises(OptionError, match="how many copies of a task run"):
            make_options({"sbatch": {key: 2}})


def test_the_explanations_of_o_and_gpus_name_the_options_sbatch_reads() -> None:
    with pytest.raises(OptionError) as err:
        make_options({"sbatch": {"o": "out.log"}})
    assert "'o' (the short flag -o, --output)" in str(err.value)
    assert "logs/" in str(err.value)
    with pytest.raises(OptionError) as err:
        make_options({"sbatch": {"gpus": 2}})
    assert "'gpus' (--gpus)" in str(err.value) and "gpus_per_run=" in str(err.value)


AMBIGUOUS = sorted({o[:i] for o in SBATCH_OPTIONS for i in range(1, len(o))
                    if o[:i] not in SBATCH_OPTIONS and o[:i] not in SBATCH_SHORT
                    and sum(x.startswith(o[:i]) for x in SBATCH_OPTIONS) > 1})


@pytest.mark.parametrize("key", AMBIGUOUS)
def test_sbatch_keys_sbatch_cannot_resolve_are_refused_naming_the_candidates(key: str) -> None:
    with pytest.raises(OptionError, match="abbreviates several sbatch options") as err:
        make_options({"sbatch": {key: "x"}})
    for option in SBATCH_OPTIONS:
        if option.startswith(key):
            assert f"--{option}" in str(err.value)


FREE = sorted(set(SBATCH_OPTIONS) - set(RESERVED_SBATCH))
UNIQUE = [(o[:i], o) for o in FREE for i in range(2, len(o) + 1)
          if [x for x in SBATCH_OPTIONS if x.startswith(o[:i])] == [o]]


@pytest.mark.parametrize(("key", "name"), UNIQUE)
def test_sbatch_keys_are_written_as_the_option_sbatch_reads(key: str, name: str) -> None:
    assert make_options({"sbatch": {key: "1"}}).sbatch == ((name, "1"),)
    assert make_options({"sbatch": {key.replace("-", "_"): True}}).sbatch == ((name, True),)
    with pytest.raises(OptionError, match=f"name the same directive --{name}"):
        make_options({"sbatch": {key: "1", f"--{name}": "2"}})


@pytest.mark.parametrize(("short", "name"), sorted((s, n) for s, n in SBATCH_SHORT.items()
                                                   if n not in RESERVED_SBATCH))
def test_short_flags_are_refused_with_their_long_name(short: str, name: str) -> None:
    for key in (short, f"-{short}"):
        with pytest.raises(OptionError, match=f"short flag -{short}: give its long name "
                                              f"'{name}'"):
            make_options({"sbatch": {key: "x"}})


@pytest.mark.parametrize("syntax", ["gres", "gpus"])
@pytest.mark.parametrize("gpus", [0, 0.25, 0.5, 1, 2, 3])
def test_every_task_asks_for_one_copy_on_one_node(syntax: str, gpus: float) -> None:
    """sbatch refuses --gpus-per-task without a task count: one task on one node."""
    res = make_options({"gpus_per_run": gpus, "gpu_syntax": syntax}).resources()
    assert (res["nodes"], res["ntasks_per_node"]) == (1, 1)
    if gpus:
        want = max(1, round(gpus))
        assert res.get("gres" if syntax == "gres" else "gpus_per_task") == (
            f"gpu:{want}" if syntax == "gres" else want)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "#SBATCH --time=5", "x #sbatch y",
                                   "#Sbatch"])
def test_sbatch_values_cannot_inject_lines_or_directives(value: str) -> None:
    with pytest.raises(OptionError, match="newlines or #SBATCH"):
        make_options({"sbatch": {"comment": value}})


@pytest.mark.parametrize("bad", [["constraint=a100"], "constraint=a100", ("a", "b")])
def test_sbatch_must_be_a_dict(bad: object) -> None:
    with pytest.raises(OptionError, match="give a dict"):
        make_options({"sbatch": bad})


@pytest.mark.parametrize("key", ["Constraint", "con straint", "", "a" * 65, 5, "x;y"])
def test_sbatch_bad_keys_rejected(key: object) -> None:
    with pytest.raises(OptionError, match="sbatch key"):
        make_options({"sbatch": {key: "v"}})


@pytest.mark.parametrize("value", [None, False, [1], {"a": 1}])
def test_sbatch_bad_value_types_rejected(value: object) -> None:
    with pytest.raises(OptionError, match="a string, a number or True"):
        make_options({"sbatch": {"comment": value}})


@pytest.mark.parametrize("key", ["constraint\n", "constraint\r\n"])
def test_sbatch_key_with_trailing_newline_rejected(key: str) -> None:
    """A key ending in a newline is refused: it would break the script (an '=value' line
    ends sbatch's directive parsing)."""
    with pytest.raises(OptionError, match="sbatch key"):
        make_options({"sbatch": {key: "a100"}})


@pytest.mark.parametrize("extra", [{"mail_type": "END", "mail-type": "ALL"},
                                   {"exclusive": True, "--exclusive": "user"}])
def test_sbatch_keys_equal_after_normalising_rejected(extra: dict) -> None:
    """Two spellings of one directive are refused, not both written."""
    with pytest.raises(OptionError):
        make_options({"sbatch": extra})


# -- setup lines ------------------------------------------------------------------------------
def test_setup_lines() -> None:
    assert make_options({"setup": "module load a\nsource b"}).setup == ("module load a",
                                                                        "source b")
    assert make_options({"setup": ["a", "b\r\nc"]}).setup == ("a", "b", "c")
    assert make_options({"setup": []}).setup == ()


@pytest.mark.parametrize(("bad", "match"), [
    ("#SBATCH --time=5", "#SBATCH directive"), (["ok", "  #SBATCH -p x"], "#SBATCH directive"),
    ("ok\n#SBATCH --mem=1", "#SBATCH directive"), (["a\x00b"], "NUL"),
    (5, "string or a list"), (["a", 3], "string or a list"), ({"a": 1}, "string or a list"),
])
def test_setup_rejected(bad: object, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        make_options({"setup": bad})


# -- partition, account, qos ------------------------------------------------------------------
@pytest.mark.parametrize("key", ["partition", "account", "qos"])
@pytest.mark.parametrize("bad", ["a b", "a\nb", "x;y", "$(id)", "", "a`b`", 5])
def test_names_rejected(key: str, bad: object) -> None:
    with pytest.raises(OptionError, match=f"{key}=.*no spaces or newlines"):
        make_options({key: bad})


@pytest.mark.parametrize("key", ["partition", "account", "qos"])
def test_names_with_trailing_newline_rejected(key: str) -> None:
    """A name with a trailing newline ('debug\\n') is refused."""
    with pytest.raises(OptionError):
        make_options({key: "debug\n"})


def test_names_accepted() -> None:
    opts = make_options({"partition": "gpu,debug", "account": "my-lab", "qos": "user@x.y"})
    assert (opts.partition, opts.account, opts.qos) == ("gpu,debug", "my-lab", "user@x.y")


# -- merging and names ------------------------------------------------------------------------
def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(OptionError) as err:
        make_options({"gpu_per_run": 1})
    msg = str(err.value)
    assert "'gpu_per_run'" in msg
    for name in ("gpus_per_run", "partition", "time", "sbatch", "gpus_per_experiment"):
        assert name in msg
    assert "profile," not in msg  # internal field is not offered


@pytest.mark.parametrize(("alias", "name", "value", "expected"), [
    ("gpus_per_experiment", "gpus_per_run", 0.5, 0.5),
    ("cpus_per_experiment", "cpus_per_run", 3, 3),
    ("mem_per_experiment", "mem_per_run", "2G", 2048),
    ("experiments_per_task", "runs_per_task", 9, 9),
    ("time_per_experiment", "time_per_run", "5min", 300),
])
def test_aliases(alias: str, name: str, value: object, expected: object) -> None:
    assert getattr(make_options({alias: value}), name) == expected
    with pytest.raises(OptionError, match="same option"):
        make_options({alias: value, name: value})
    with pytest.raises(OptionError, match="same option"):
        make_options({name: value, alias: value})
    # alias in the profile, name given (or the reverse): the given one wins
    assert getattr(make_options({name: value}, defaults={alias: 1}), name) == expected
    assert getattr(make_options({alias: value}, defaults={name: 1}), name) == expected


def test_given_over_defaults_over_base() -> None:
    profile = {"partition": "debug", "time": "10:00", "cpus_per_run": 2, "profile": "p"}
    opts = make_options({"time": 20}, defaults=profile)
    assert (opts.partition, opts.time, opts.cpus_per_run, opts.profile) == ("debug", 1200, 2,
                                                                           "p")
    base = SlurmOptions(time=600, partition="old", cpus_per_run=4)
    kept = make_options({"partition": "new"}, base=base)
    assert (kept.time, kept.partition, kept.cpus_per_run) == (600, "new", 4)
    assert make_options({}, defaults={"cpus_per_run": 8}, base=base).cpus_per_run == 8
    assert make_options({"time": 20}, base=base).time == 1200


def test_signal_delay_time_and_requeues() -> None:
    assert make_options({"signal_delay": 120}).signal_delay == 120  # seconds, not minutes
    assert make_options({"signal_delay": "2min"}).signal_delay == 120
    with pytest.raises(OptionError, match=r"signal_delay=.*not shorter"):
        make_options({"time": 2, "signal_delay": 120})
    with pytest.raises(OptionError, match="signal_delay"):
        make_options({"signal_delay": 0})
    for short in ("30s", 0.5):
        with pytest.raises(OptionError, match="at least 1 minute"):
            make_options({"time": short})
    assert make_options({"max_requeues": 0}).max_requeues == 0
    for bad in (-1, True, 1.0):
        with pytest.raises(OptionError, match="max_requeues="):
            make_options({"max_requeues": bad})


@pytest.mark.parametrize("key", ["cpus_per_run", "runs_per_task", "max_parallel_tasks",
                                 "lanes_per_task"])
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_positive_integers(key: str, bad: object) -> None:
    with pytest.raises(OptionError, match=f"{key}="):
        make_options({key: bad})


def test_from_dict_after_json_round_trip() -> None:
    opts = make_options({"gpus_per_run": 0.5, "cpus_per_run": 2, "mem_per_run": "3G",
                         "runs_per_task": 5, "time_per_run": 7, "partition": "p",
                         "time": "2:00:00", "max_parallel_tasks": 3, "account": "a",
                         "qos": "q", "setup": ["a", "b"], "gpu_syntax": "gpus",
                         "sbatch": {"constraint": "x", "exclusive": True},
                         "lanes_per_task": 4, "signal_delay": 30, "max_requeues": 0,
                         "profile": "generic"})
    back = SlurmOptions.from_dict(json.loads(json.dumps(dataclasses.asdict(opts))))
    assert back == opts and back.profile == "generic"
    assert isinstance(back.setup, tuple) and isinstance(back.sbatch[0], tuple)
    assert set(dataclasses.asdict(opts)) == set(OPTION_NAMES)


# -- properties -------------------------------------------------------------------------------
@PROPERTY
@given(st.tuples(st.text(), st.sampled_from(["\n", "\r"]), st.text()).map("".join))
def test_sbatch_value_with_line_break_always_rejected(s: str) -> None:
    with pytest.raises(OptionError):
        make_options({"sbatch": {"comment": s}})


@PROPERTY
@given(st.integers(min_value=1, max_value=366 * 24 * 60))
def test_minutes_are_sixty_seconds(m: int) -> None:
    assert parse_duration(m, "t") == 60 * m
    assert parse_duration(f"{m}min", "t") == 60 * m
