"""Cluster profiles: named TOML defaults for Slurm options (templates/profiles/*.toml).

A profile is looked up by name (``profile=`` or the SLURMBATCH_PROFILE environment
variable) in the built-in templates, then in ``~/.config/slurmbatch/profiles/NAME.toml``,
then in the ``[profiles.NAME]`` table of the project's ``slurmbatch.toml``; later ones
override earlier ones key by key.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from ..errors import OptionError

ENV = "SLURMBATCH_PROFILE"
PROJECT_FILE = "slurmbatch.toml"


def builtin_dir() -> Path:
    """Where the built-in profiles are (the repository's templates/, or the installed copy)."""
    here = Path(__file__).resolve().parents[1]  # the slurmbatch package
    for candidate in (here / "templates" / "profiles", here.parent / "templates" / "profiles"):
        if candidate.is_dir():
            return candidate
    return here / "templates" / "profiles"


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise OptionError(f"cluster profile {path} is unreadable: {exc}") from None


def _project_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """The ``[profiles.NAME]`` tables of a project file, checked for shape."""
    profiles = _read(path).get("profiles", {})
    if not isinstance(profiles, dict):
        raise OptionError(f"{path}: 'profiles' must be a table of [profiles.NAME] tables, "
                          f"not {type(profiles).__name__}")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise OptionError(f"{path}: profiles.{name} must be a table of options "
                              f"([profiles.{name}] then key = value lines), not "
                              f"{type(table).__name__}")
    return profiles


def available() -> list[str]:
    names = {p.stem for p in builtin_dir().glob("*.toml")}
    user = Path.home() / ".config" / "slurmbatch" / "profiles"
    names |= {p.stem for p in user.glob("*.toml")} if user.is_dir() else set()
    project = Path.cwd() / PROJECT_FILE
    if project.is_file():
        names |= set(_project_profiles(project))
    return sorted(names)


def load(name: str | None, project_dir: Path | None = None) -> dict[str, Any]:
    """The options a profile sets ({} when no profile is selected)."""
    if name is None or name == "":  # none given: the environment's, if any
        name = os.environ.get(ENV) or None
    if name is None:
        return {}
    if not isinstance(name, str) or "/" in name:
        raise OptionError(f"profile={name!r}: give a profile name, e.g. 'generic'")
    found = False
    merged: dict[str, Any] = {}
    for path in (builtin_dir() / f"{name}.toml",
                 Path.home() / ".config" / "slurmbatch" / "profiles" / f"{name}.toml"):
        if path.is_file():
            merged.update(_read(path))
            found = True
    project = (project_dir or Path.cwd()) / PROJECT_FILE
    if project.is_file():
        table = _project_profiles(project).get(name)
        if table is not None:
            merged.update(table)
            found = True
    if not found:
        raise OptionError(f"no cluster profile {name!r}; available: "
                          f"{', '.join(available()) or '(none)'} (add one in {PROJECT_FILE})")
    merged.pop("description", None)
    merged["profile"] = name
    return merged
