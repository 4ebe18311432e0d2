"""Every code block of the README and docs/ runs, and the reference pages match the code.

How a page's fenced blocks are treated, by their language (every block must have one):

- ``python``: executed in order, one namespace per page, in the test's temporary
  working directory;
- ``bash`` (a script) and ``console`` (its ``$ `` lines; the other lines are output):
  run with bash (``-e -o pipefail``) in the same directory, in document order with the
  Python blocks, with the venv's ``slurmbatch`` first on PATH. Lines that call the
  repository's scripts (``scripts/test.sh``, ``scripts/demo.sh``: the README's set-up
  commands, which install into .venv and, for test.sh, run this suite) are not run:
  the script must exist and be executable;
- ``toml``: parsed; ``text``: output or a diagram, not run.

An HTML comment on the line before a fence changes that:

- ``<!-- docs-test: slurm -->``: the block needs a Slurm cluster. It is skipped here;
  tests/slurm/test_cluster_docs.py runs the whole page, in order, on the test cluster.
  Every block of the pages in CLUSTER_DOCS needs the cluster;
- ``<!-- docs-test: file NAME -->``: the block is written to NAME (a script that a later
  shell block runs) instead of being run;
- ``<!-- docs-test: seed FILE -->``: the block quotes the seed document FILE (in
  tests/seeds/, vendored) for the "From ..." pages; it is not run, and
  must appear there, whitespace aside; a line ``...`` elides seed lines.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import slurmbatch

from helpers import ROOT

DOCS = ROOT / "docs"
CLUSTER_DOCS = ("slurm.md",)  # every block needs a Slurm cluster: tests/slurm/test_cluster_docs.py
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
PYTHON, SHELL, DATA, OUTPUT = {"python"}, {"bash", "console"}, {"toml"}, {"text"}
SEEDS = ROOT / "tests" / "seeds"  # the seed documents the "From ..." pages quote (vendored)
PRELUDE = {"format.md": ROOT / "README.md"}  # format.md reads the segment README's example makes
SETUP_LINE = re.compile(r"^scripts/[\w.-]+\.sh\b")
FENCE = re.compile(r"^(`{3,})(.*)$")
DIRECTIVE = re.compile(r"^<!-- docs-test: (slurm|file \S+|seed \S+) -->$")
BIN = Path(sys.executable).parent  # the venv's bin/: its slurmbatch and python


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    directive: str | None  # the docs-test comment before the fence, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def parse(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the docs-test comment before each."""
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).strip()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == fence), None)
        assert end is not None, f"{path.relative_to(ROOT)}:{i + 1}: unclosed code block"
        before = lines[i - 1].strip() if i else ""
        d = DIRECTIVE.match(before)
        assert d or not before.startswith("<!-- docs-test"), \
            f"{path.relative_to(ROOT)}:{i}: unknown docs-test comment {before!r}"
        out.append(Block(path, i + 1, lang, "\n".join(lines[i + 1:end]) + "\n",
                         d.group(1) if d else None))
        i = end + 1
    return out


def blocks(path: Path) -> list[str]:
    """The Python blocks of a page (kept for callers that only run Python)."""
    return [b.code for b in parse(path) if b.lang in PYTHON and b.directive is None]


def needs_cluster(path: Path) -> bool:
    return path.name in CLUSTER_DOCS or any(b.directive == "slurm" for b in parse(path))


def console_commands(code: str) -> str:
    """The commands of a console block: its ``$ `` lines and their continuations."""
    out, going_on = [], False
    for line in code.splitlines():
        if line.startswith("$ ") or going_on:
            out.append(line[2:] if line.startswith("$ ") and not going_on else line)
            going_on = line.endswith("\\")
    return "\n".join(out) + "\n"


def shell_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "COLUMNS": "100"}


def run_shell(block: Block, cwd: Path) -> str:
    """Run a bash or console block in cwd; set-up scripts are only checked. Its output."""
    code = console_commands(block.code) if block.lang == "console" else block.code
    kept = []
    for line in code.splitlines():
        if SETUP_LINE.match(line.strip()):
            script = ROOT / line.split()[0]
            assert script.is_file() and os.access(script, os.X_OK), \
                f"{block.where}: {script} is not an executable file"
        else:
            kept.append(line)
    if not any(line.strip() and not line.lstrip().startswith("#") for line in kept):
        return ""
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", "\n".join(kept)], cwd=cwd,
                          env=shell_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f"{block.where}: exit {proc.returncode}\n{block.code}\n"
                                  f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc.stdout + proc.stderr


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check_quote(block: Block, seed: Path) -> None:
    """The quote's parts (split at lines ``...``) are in the seed, in order, whitespace aside."""
    text, at = squeeze(seed.read_text()), 0
    for part in re.split(r"^\s*\.\.\.\s*$", block.code, flags=re.M):
        found = text.find(squeeze(part), at)
        assert found >= 0, f"{block.where}: not in {seed}:\n{part}"
        at = found + len(squeeze(part))


def run_page(path: Path, cwd: Path, *, cluster: bool = False) -> list[str]:
    """Run a page's blocks in order (those needing a cluster only with ``cluster``).

    Returns the output of each shell block that ran."""
    if path.name in PRELUDE:
        exec("\n".join(blocks(PRELUDE[path.name])), {"__name__": "prelude"})
    name = path.stem.replace("-", "_")
    if name in sys.modules:  # e.g. 'slurm', the tests' own package: a script's name is its own
        name = f"docs_{name}"
    namespace: dict = {"__name__": name}
    outputs = []
    for block in parse(path):
        kind, _, arg = (block.directive or "").partition(" ")
        if kind == "slurm" and not cluster:
            continue
        if kind == "file":
            (cwd / arg).write_text(block.code)
        elif kind == "seed":
            continue  # checked by test_seed_quotes_are_verbatim
        elif block.lang in PYTHON:
            exec(compile(block.code, f"{block.where} (python block)", "exec"), namespace)
        elif block.lang in SHELL:
            outputs.append(run_shell(block, cwd))
        elif block.lang in DATA:
            tomllib.loads(block.code)
    return outputs


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_says_what_it_is(path: Path) -> None:
    known = PYTHON | SHELL | DATA | OUTPUT
    for block in parse(path):
        assert block.lang in known, (f"{block.where}: give the block one of the languages "
                                     f"{sorted(known)} (text: output, not run)")
        if block.directive and block.directive.startswith("file"):
            assert block.lang in PYTHON | DATA | OUTPUT, f"{block.where}: a file of what?"


@pytest.mark.parametrize("path", [p for p in PAGES if p.name not in CLUSTER_DOCS
                                  and any(b.lang not in OUTPUT for b in parse(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_page(path, tmp_path)  # conftest made tmp_path the working directory
    capsys.readouterr()


@pytest.mark.parametrize("path", [p for p in PAGES if any(b.directive and
                                                            b.directive.startswith("seed ")
                                                            for b in parse(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_seed_quotes_are_verbatim(path: Path) -> None:
    quotes = [b for b in parse(path) if b.directive and b.directive.startswith("seed ")]
    for block in quotes:
        seed = SEEDS / block.directive.split(" ", 1)[1]
        assert seed.is_file(), f"{path.name}:{block.line}: no seed document {seed}"
        check_quote(block, seed)


def test_setup_commands_exist() -> None:
    """README's two set-up commands are scripts of the repository (checked, not run)."""
    shown = [line for b in parse(ROOT / "README.md") if b.lang in SHELL
             for line in b.code.splitlines() if SETUP_LINE.match(line)]
    assert shown == ["scripts/demo.sh", "scripts/test.sh"]
    for line in shown:
        assert os.access(ROOT / line, os.X_OK)


def test_every_page_is_in_the_nav() -> None:
    listed = re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(),
                        re.M)
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(listed) == pages


# -- the API reference: every public name has its mkdocstrings entry ---------------------

def test_api_reference_covers_every_public_name() -> None:
    text = "\n".join(p.read_text() for p in sorted((DOCS / "api").glob("*.md")))
    entries = re.findall(r"^::: slurmbatch\.(\w+)\s*$", text, re.M)
    assert sorted(entries) == sorted(slurmbatch.__all__)
    assert len(entries) == len(set(entries)), "a name has two entries"


def test_the_package_docstring_quickstart_runs(tmp_path: Path) -> None:
    """help(slurmbatch) opens with a quickstart: it runs as shown, in a fresh process
    (results in _res/ of an empty folder), and gives the table it says."""
    doc = slurmbatch.__doc__ or ""
    lines = doc.split("Quickstart::", 1)[1].splitlines()[1:]
    end = next(i for i, line in enumerate(lines) if line and not line.startswith("    "))
    code = "\n".join(line[4:] for line in lines[:end])
    assert "batch()" in code
    probe = code + ("\ndf = batch.results.df\n"
                    "assert list(df.columns) == ['id', 'x', 'power', 'y'], df.columns\n"
                    "assert sorted(df['y']) == [1, 1, 4, 8, 9, 27]\n"
                    "assert [r.parameters['x'] for r in batch.get_runs_with(x__ge=2, power=2)]"
                    " == [2, 3]\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout.split()[-1] == "ok", out.stderr


# -- the CLI reference: docs/cli.md against the argparse parser of slurmbatch.cli --------

def cli_parser() -> argparse.ArgumentParser:
    """The parser slurmbatch.cli.main builds (captured when it parses)."""
    from slurmbatch import cli

    class Captured(Exception):
        pass

    def capture(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise Captured(self)

    mp = pytest.MonkeyPatch()
    mp.setattr(argparse.ArgumentParser, "parse_args", capture)
    try:
        cli.main([])
    except Captured as got:
        return got.args[0]
    finally:
        mp.undo()
    raise AssertionError("slurmbatch.cli.main did not parse its arguments")


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def documented_commands() -> dict[str, str]:
    """docs/cli.md's sections ``## slurmbatch NAME``, by name, in page order."""
    parts = re.split(r"^## slurmbatch (\S+)\s*$", (DOCS / "cli.md").read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_cli_page_has_every_subcommand_in_order() -> None:
    assert list(documented_commands()) == list(subcommands())


@pytest.mark.parametrize("command", list(subcommands()))
def test_cli_page_matches_the_parser(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    parser = subcommands()[command]
    section = documented_commands()[command]
    usage = re.search(r"^```text\n(usage: .*?)^```", section, re.S | re.M)
    assert usage, f"## slurmbatch {command}: no ```text usage block"
    assert squeeze(usage.group(1)) == squeeze(parser.format_usage()), \
        f"## slurmbatch {command}: the usage differs from the parser's:\n{parser.format_usage()}"
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")]
    formatter = parser._get_formatter()
    want = [formatter._format_action_invocation(a) for a in arguments(parser)]
    got = [re.match(r"`([^`]+)`", row[0]).group(1) for row in rows]
    assert got == want, f"## slurmbatch {command}: the argument table differs from the parser"
    for action, (_, default, meaning) in zip(arguments(parser), rows, strict=True):
        if action.default is None or action.default is False:
            assert "`" not in default, f"{command} {want}: the parser has no default"
        else:
            assert f"`{action.default}`" in default, \
                f"{command} {action.dest}: the default is {action.default!r}"
        assert meaning, f"{command} {action.dest}: say what it does"


@pytest.mark.parametrize("command", list(subcommands()))
def test_cli_help_lists_the_documented_options(command: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``slurmbatch CMD --help`` shows every option the page documents (the entry point
    itself runs in the page's first shell block, ``slurmbatch --help``)."""
    from slurmbatch import cli

    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    options = re.findall(r"^\| `(--[\w-]+)", documented_commands()[command], re.M)
    assert options or command == "ls"
    for option in options:
        assert re.search(rf"(^|\s){re.escape(option)}\b", shown), option


def test_demo_script_installs_only_when_missing_or_changed(tmp_path: Path) -> None:
    """scripts/demo.sh installs slurmbatch into .venv the first time and after
    pyproject.toml changed, not on every call (its pip took 5 of its 6 s)."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "demo.sh").write_text((ROOT / "scripts" / "demo.sh").read_text())
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_ = repo / ".venv" / "bin"
    bin_.mkdir(parents=True)
    log = tmp_path / "calls.log"
    # a stand-in venv: python logs pip installs and answers the import check once
    # installed; slurmbatch logs the demo call
    (bin_ / "python").write_text(f"""#!/bin/bash
if [ "$1" = -m ] && [ "$2" = pip ]; then echo pip >> {log}; touch {repo}/.installed; exit 0; fi
if [ "$1" = -c ]; then [ -f {repo}/.installed ]; exit; fi
exit 1
""")
    (bin_ / "slurmbatch").write_text(f'#!/bin/bash\necho "demo $*" >> {log}\n')
    (bin_ / "activate").write_text(f'export PATH="{bin_}:$PATH"\n')
    for f in ("python", "slurmbatch"):
        (bin_ / f).chmod(0o755)

    def demo() -> list[str]:
        subprocess.run(["bash", str(repo / "scripts" / "demo.sh"), "--seeds", "1"], check=True,
                       capture_output=True, timeout=60)
        return log.read_text().splitlines()

    assert demo() == ["pip", "demo demo --seeds 1"]
    for _ in range(3):
        assert demo()[-1] == "demo demo --seeds 1"
    assert log.read_text().count("pip") == 1  # not again
    os.utime(repo / "pyproject.toml", (os.path.getmtime(repo / ".venv" /
                                                        ".slurmbatch-installed") + 5,) * 2)
    assert demo()[-2:] == ["pip", "demo demo --seeds 1"]  # changed: installed again
    (repo / ".installed").unlink()  # e.g. the venv lost the package
    assert demo()[-2:] == ["pip", "demo demo --seeds 1"]
    assert log.read_text().count("pip") == 3
