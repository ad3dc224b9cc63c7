"""The habits that hold the line: CI lints before it tests, and the pre-commit hooks run
the very checks `make lint` runs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _lint_commands() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None, "the Makefile has no lint target"
    return [line.strip().replace("$(VENV)", ".venv") for line in recipe.group(1).splitlines()]


def test_ci_lints_before_it_tests() -> None:
    script = (ROOT / ".ci/run").read_text().splitlines()
    steps = [line for line in script if line.startswith("make")]
    assert steps[:2] == ["make lint", 'make test PYTEST_ARGS="${PYTEST_ARGS:-}"']


def test_pre_commit_runs_what_make_lint_runs() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    entries = [hook["entry"] for repo in config["repos"] for hook in repo["hooks"]]
    tools = {command.split()[0] + " " + command.split()[1] for command in _lint_commands()}
    assert tools == {" ".join(entry.split()[:2]) for entry in entries}
    assert any(entry.startswith(".venv/bin/mypy shared services") for entry in entries)


def test_the_cli_names_the_services_and_roles_the_code_knows() -> None:
    """The CLI keeps its own copies so that `slapay --help` loads no web stack."""
    from services import cli
    from shared.auth import ROLES
    from shared.settings import SERVICES

    assert cli.SERVICES == SERVICES and cli.ROLES == ROLES


def test_every_bench_module_imports() -> None:
    """`make bench` is not run by CI: at least its modules must still import."""
    import importlib
    import pkgutil

    import bench

    for module in pkgutil.iter_modules(bench.__path__):
        if module.name != "__main__":  # that one runs the bench
            importlib.import_module(f"bench.{module.name}")
