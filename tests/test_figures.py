"""The book's stored figures: each stored value is what its function computes now, a figure
is refused once a checkpoint it came from changes, and every figure a chapter reads exists."""
import json
import re
from pathlib import Path

import pytest

from vaebook.metrics import book_figures, stored  # noqa: F401  (registers the figures)
from vaebook.store import CheckpointError
from vaebook.store import figures as files

ROOT = Path(__file__).resolve().parent.parent


def chapter_figure_names() -> set[str]:
    """Every name passed to stored.figure("...") in a chapter."""
    pattern = re.compile(r"stored\.figure\(\s*[\"']([^\"']+)[\"']")
    return {n for qmd in (ROOT / "chapters").glob("*.qmd") for n in pattern.findall(qmd.read_text())}


@pytest.mark.parametrize("name", sorted(stored.REGISTRY))
def test_stored_figure_is_what_its_code_computes(name):
    fig = stored.REGISTRY[name]
    value = stored.figure(name)  # also: stored, and computed from today's checkpoints
    problems = stored.differences(stored.compute(name), value, fig.rel_tol, fig.abs_tol)
    assert not problems, f"{name}: recompute with `python -m vaebook figures --update {name}`:\n" + \
        "\n".join(problems[:10])


def test_every_figure_a_chapter_reads_is_registered_and_stored():
    names = chapter_figure_names()
    assert not names - set(stored.REGISTRY), "chapters read figures nobody computes"
    saved = files.read_all()
    assert not names - set(saved), "chapters read figures that are not stored"
    assert not set(saved) - set(stored.REGISTRY), "figures.json holds figures no code computes"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A checkpoint folder with one model, 'm', and a figure 'demo' computed from it."""
    digest = "ab" * 32
    (tmp_path / "manifest.json").write_text(json.dumps({"m": {"sha256": digest}}))
    calls = []
    monkeypatch.setitem(stored.REGISTRY, "demo", stored.BookFigure(
        "demo", ("m",), lambda: calls.append(1) or {"x": [1.5, 2], "name": "a"}, 1e-6, 1e-9))
    return tmp_path


def test_update_stores_what_figure_reads(folder):
    stored.update(["demo"], root=folder)
    assert stored.figure("demo", root=folder) == {"x": [1.5, 2], "name": "a"}
    entry = files.read_all(folder)["demo"]
    assert entry["inputs"]["m"] == "ab" * 32 and entry["inputs"]["faces"].startswith("render version")


def test_a_changed_model_makes_its_figure_stale(folder):
    stored.update(["demo"], root=folder)
    (folder / "manifest.json").write_text(json.dumps({"m": {"sha256": "cd" * 32}}))
    with pytest.raises(files.StaleFigureError, match=r"other versions of m; .*figures --update demo"):
        stored.figure("demo", root=folder)


def test_a_missing_figure_says_how_to_compute_it(folder):
    with pytest.raises(files.StaleFigureError, match=r"no stored figure 'demo'.*figures --update demo"):
        stored.figure("demo", root=folder)


def test_a_damaged_figures_file_says_how_to_restore_it(folder):
    (folder / files.FIGURES).write_text("{not json")
    with pytest.raises(CheckpointError, match="git checkout"):
        stored.figure("demo", root=folder)


def test_update_keeps_the_other_figures_and_refuses_non_json(folder, monkeypatch):
    files.write("other", 3.25, {"faces": "x"}, folder)
    stored.update(["demo"], root=folder)
    assert files.read_all(folder)["other"]["value"] == 3.25
    monkeypatch.setitem(stored.REGISTRY, "bad", stored.BookFigure("bad", ("m",), lambda: {1, 2}, 0, 0))
    before = (folder / files.FIGURES).read_text()
    with pytest.raises(TypeError):
        stored.update(["bad"], root=folder)
    assert (folder / files.FIGURES).read_text() == before


def test_differences_compares_numbers_within_tolerance():
    assert stored.differences({"a": [1.0, 2.0]}, {"a": [1.0 + 1e-9, 2.0]}, 1e-6, 0) == []
    assert stored.differences({"a": [1.0, 2.0]}, {"a": [1.0, 2.1]}, 1e-6, 0) == ["['a'][1]: 2.0 computed, 2.1 stored"]
    assert stored.differences({"a": 1}, {"b": 1}, 1e-6, 0)
    assert stored.differences([1, 2], [1], 1e-6, 0)
    assert stored.differences("x", "y", 1e-6, 0)


def test_unknown_figure_lists_the_known_ones():
    with pytest.raises(KeyError, match="no book figure named 'nope'"):
        stored.compute("nope")


def test_the_figures_command_lists_them_and_names_an_unknown_one(capsys):
    from vaebook.cli.commands import main
    main(["figures"])
    listed = capsys.readouterr().out
    assert all(f"{name} " in listed for name in stored.REGISTRY) and " stored " in listed
    with pytest.raises(SystemExit) as exit_:
        main(["figures", "nope"])
    assert exit_.value.code == 2
    assert "no book figure named 'nope'; known: ch" in capsys.readouterr().err
