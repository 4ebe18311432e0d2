"""Cluster profiles (slurmbatch/slurm/profiles.py): built-ins, the environment variable,
user and project overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from slurmbatch.errors import OptionError
from slurmbatch.slurm import profiles
from slurmbatch.slurm.options import make_options

BUILTIN = ("generic", "gpus-flag", "testcluster")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No profile selected and an empty home, whatever the machine running the tests has."""
    monkeypatch.delenv(profiles.ENV, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def user_dir(home_dir: Path) -> Path:
    d = home_dir / ".config" / "slurmbatch" / "profiles"
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_builtin_profiles_ship_and_validate() -> None:
    assert {p.stem for p in profiles.builtin_dir().glob("*.toml")} >= set(BUILTIN)
    assert set(profiles.available()) >= set(BUILTIN)
    for name in BUILTIN:
        prof = profiles.load(name)
        assert prof["profile"] == name and "description" not in prof
        opts = make_options({}, defaults=prof)
        assert opts.profile == name


def test_testcluster_and_gpus_flag_values() -> None:
    opts = make_options({}, defaults=profiles.load("testcluster"))
    assert (opts.partition, opts.time, opts.signal_delay) == ("debug", 600, 60)
    assert opts.setup == ("export PYTHONUNBUFFERED=1",)
    generic = make_options({"gpus_per_run": 1}, defaults=profiles.load("generic"))
    assert generic.time == 3600 and generic.resources()["gres"] == "gpu:1"
    flag = make_options({"gpus_per_run": 1}, defaults=profiles.load("gpus-flag"))
    assert flag.resources()["gpus_per_task"] == 1 and "gres" not in flag.resources()


def test_no_profile_selected() -> None:
    assert profiles.load(None) == {}
    assert profiles.load("") == {}


def test_env_var_selects_a_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(profiles.ENV, "testcluster")
    assert profiles.load(None)["partition"] == "debug"
    assert profiles.load("generic")["profile"] == "generic"  # an explicit name wins


def test_unknown_name_lists_available() -> None:
    with pytest.raises(OptionError) as err:
        profiles.load("nosuchcluster")
    msg = str(err.value)
    assert "'nosuchcluster'" in msg
    for name in BUILTIN:
        assert name in msg
    assert profiles.PROJECT_FILE in msg


@pytest.mark.parametrize("bad", ["../generic", "a/b", "/etc/passwd"])
def test_name_with_slash_rejected(bad: str) -> None:
    with pytest.raises(OptionError, match="give a profile name"):
        profiles.load(bad)


def test_project_table_overrides_key_by_key_and_adds_profiles(tmp_path: Path) -> None:
    (tmp_path / profiles.PROJECT_FILE).write_text(
        '[profiles.generic]\ntime = "2:00:00"\n\n'
        '[profiles.mine]\ndescription = "ours"\npartition = "gpu"\nmem_per_run = "16G"\n')
    generic = profiles.load("generic")
    assert generic["time"] == "2:00:00"
    assert generic["gpu_syntax"] == "gres" and generic["cpus_per_run"] == 1  # built-in kept
    assert make_options({}, defaults=generic).time == 7200
    assert "mine" in profiles.available()
    mine = profiles.load("mine")
    assert mine == {"partition": "gpu", "mem_per_run": "16G", "profile": "mine"}
    assert make_options({}, defaults=mine).mem_per_run == 16384


def test_project_dir_argument(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / profiles.PROJECT_FILE).write_text('[profiles.elsewhere]\nqos = "long"\n')
    assert profiles.load("elsewhere", project_dir=project)["qos"] == "long"
    with pytest.raises(OptionError):
        profiles.load("elsewhere")  # cwd has no project file


def test_user_profile_found_and_overridden_by_project(tmp_path: Path, home: Path) -> None:
    (user_dir(home) / "lab.toml").write_text(
        'description = "x"\npartition = "lab"\naccount = "me"\n')
    assert "lab" in profiles.available()
    assert profiles.load("lab") == {"partition": "lab", "account": "me", "profile": "lab"}
    (user_dir(home) / "generic.toml").write_text('time = "30:00"\n')
    assert profiles.load("generic")["time"] == "30:00"  # user over built-in
    (tmp_path / profiles.PROJECT_FILE).write_text('[profiles.lab]\npartition = "proj"\n')
    lab = profiles.load("lab")
    assert (lab["partition"], lab["account"]) == ("proj", "me")


def test_malformed_toml_names_the_file(tmp_path: Path, home: Path) -> None:
    project = tmp_path / profiles.PROJECT_FILE
    project.write_text("[profiles.generic\ntime = \n")
    with pytest.raises(OptionError, match="unreadable") as err:
        profiles.load("generic")
    assert str(project) in str(err.value)
    with pytest.raises(OptionError, match=profiles.PROJECT_FILE):
        profiles.available()
    project.unlink()
    bad = user_dir(home) / "broken.toml"
    bad.write_text("partition = = 'x'\n")
    with pytest.raises(OptionError) as err:
        profiles.load("broken")
    assert str(bad) in str(err.value)


def test_invalid_value_in_profile_reported_by_make_options(tmp_path: Path) -> None:
    (tmp_path / profiles.PROJECT_FILE).write_text('[profiles.bad]\ntime = "soon"\n')
    with pytest.raises(OptionError, match="time='soon'"):
        make_options({}, defaults=profiles.load("bad"))
    assert make_options({"time": 30}, defaults=profiles.load("bad")).time == 1800
    (tmp_path / profiles.PROJECT_FILE).write_text('[profiles.bad]\ngpus = 1\n')
    with pytest.raises(OptionError, match="unknown Slurm option 'gpus'"):
        make_options({}, defaults=profiles.load("bad"))


@pytest.mark.parametrize("text", ['profiles = "generic"\n', "[profiles]\ngeneric = 3\n"])
def test_wrongly_shaped_project_file_names_the_file(tmp_path: Path, text: str) -> None:
    """A project file whose profiles are not tables gets an OptionError naming the file."""
    (tmp_path / profiles.PROJECT_FILE).write_text(text)
    with pytest.raises(OptionError, match=profiles.PROJECT_FILE):
        profiles.load("generic")
