"""The three descriptions of the environment agree: pyproject.toml (lower bounds),
environment.yml (conda, same packages) and constraints.txt (the exact tested versions)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*$")  # name, then the specifier


def normalise(name: str) -> str:
    """PEP 503: case-insensitive, runs of -, _ and . are the same."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(text: str) -> tuple[str, str]:
    m = REQ.match(text.split(";")[0])
    assert m, f"cannot parse requirement {text!r}"
    name = m.group(1).split("[")[0]
    return normalise(name), m.group(2).replace(" ", "")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_deps() -> dict[str, str]:
    return dict(split_requirement(r) for r in pyproject()["project"]["dependencies"])


def parse_environment_yml(text: str) -> tuple[list[str], list[str]]:
    """The conda entries and the pip entries of an environment.yml's dependencies list, with
    no YAML library: entries are '- item' lines; '- pip:' opens a more indented sub-list."""
    conda, pip, section, pip_indent = [], [], None, None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section = line.rstrip(":").strip() if line.endswith(":") else None
            pip_indent = None
            continue
        if section != "dependencies":
            continue
        item = line.strip()
        assert item.startswith("- "), f"unexpected line in environment.yml: {raw!r}"
        item = item[2:].strip()
        if pip_indent is not None and indent > pip_indent:
            pip.append(item)
            continue
        pip_indent = None
        if item == "pip:":
            pip_indent = indent
        else:
            conda.append(item)
    return conda, pip


def environment_deps() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """(conda packages, pip packages, the tools: python and pip)."""
    conda, pip = parse_environment_yml((ROOT / "environment.yml").read_text())
    tools = {}
    conda_deps = {}
    for item in conda:
        name, spec = split_requirement(item.replace(" ", ""))
        (tools if name in ("python", "pip") else conda_deps)[name] = spec
    return conda_deps, dict(split_requirement(i) for i in pip), tools


def constraints() -> dict[str, str]:
    pins = {}
    for raw in (ROOT / "constraints.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, spec = split_requirement(line)
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = spec
    return pins


def test_the_minimal_yaml_parser_agrees_with_pyyaml():
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in data["dependencies"] if isinstance(d, str)]
    pip = [p for d in data["dependencies"] if isinstance(d, dict) for p in d["pip"]]
    assert parse_environment_yml((ROOT / "environment.yml").read_text()) == (conda, pip)


def test_environment_yml_names_the_same_packages_as_pyproject():
    conda, pip, tools = environment_deps()
    both = set(conda) & set(pip)
    assert not both, f"in both the conda and the pip section of environment.yml: {both}"
    deps = pyproject_deps()
    env = {**conda, **pip}
    assert set(env) == set(deps), (f"only in environment.yml: {sorted(set(env) - set(deps))}; "
                                   f"only in pyproject.toml: {sorted(set(deps) - set(env))}")
    assert "pip" in tools


def test_environment_yml_uses_the_same_version_bounds_as_pyproject():
    specifiers = pytest.importorskip("packaging.specifiers")
    conda, pip, tools = environment_deps()
    for name, spec in {**conda, **pip}.items():
        assert specifiers.SpecifierSet(spec) == specifiers.SpecifierSet(pyproject_deps()[name]), name
    assert (specifiers.SpecifierSet(tools["python"])
            == specifiers.SpecifierSet(pyproject()["project"]["requires-python"]))


def test_torch_and_torchvision_come_from_pip_in_conda():
    _, pip, _ = environment_deps()
    assert {"torch", "torchvision"} <= set(pip)


def test_constraints_pin_every_dependency_exactly():
    pins = constraints()
    bad = {name: spec for name, spec in pins.items() if not re.fullmatch(r"==[0-9][0-9A-Za-z.+!-]*", spec)}
    assert not bad, f"constraints.txt lines that are not exact pins: {bad}"
    missing = set(pyproject_deps()) - set(pins)
    assert not missing, f"pyproject dependencies not pinned in constraints.txt: {sorted(missing)}"


def test_pinned_versions_satisfy_pyproject_bounds():
    specifiers = pytest.importorskip("packaging.specifiers")
    pins = constraints()
    for name, spec in pyproject_deps().items():
        version = pins[name][2:]
        assert specifiers.SpecifierSet(spec).contains(version, prereleases=True), \
            f"constraints.txt pins {name}=={version}, outside pyproject's {spec}"
    build = [split_requirement(r) for r in pyproject()["build-system"]["requires"]]
    for name, spec in build:
        if name in pins:
            assert specifiers.SpecifierSet(spec).contains(pins[name][2:])


def test_torch_and_torchvision_pins_are_a_matching_pair():
    """torchvision 0.N pairs with torch 2.(N-15) (0.29 with 2.14)."""
    pins = constraints()
    torch_minor = int(pins["torch"][2:].split(".")[1])
    vision_minor = int(pins["torchvision"][2:].split(".")[1])
    assert pins["torch"][2:].startswith("2.") and pins["torchvision"][2:].startswith("0.")
    assert vision_minor - torch_minor == 15

