"""The exercises (issue 22): the checker's one-line verdicts for every kind of wrong answer,
every reference solution passing and every stub reported as unanswered, the chapters'
Exercises sections, and the notebooks, which give the reader stubs and checks but no solutions."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from vaebook.cli import main
from vaebook.exercises import EXERCISES, check, verdict
from vaebook.exercises.autoencoders import fit_diagonal_gaussian
from vaebook.losses import kl_divergence, mse
from vaebook.models import ModelConfig, build_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebooks  # noqa: E402

FAST = [e for e in EXERCISES.values() if e.kind in ("code", "derivation")]
CHAPTER_OF = {p.stem: int(p.stem[:2]) for p in (ROOT / "chapters").glob("0[1-6]-*.qmd")}


def one_line(capsys, id, answer, *args) -> str:
    check(id, answer, *args)
    out = capsys.readouterr()
    assert out.err == "" and out.out.count("\n") == 1 and "Traceback" not in out.out, out
    return out.out.strip()


# ------------------------------------------------------------------ every kind of wrong answer
def test_a_right_answer_passes(capsys):
    line = one_line(capsys, "ex-kl-closed-form", lambda mu, logvar: kl_divergence(mu, logvar))
    assert line.startswith("✓ ex-kl-closed-form: passed (matches the reference on 3 random inputs")


def test_wrong_shape(capsys):
    line = one_line(capsys, "ex-ae-mse", lambda x_hat, x: ((x_hat - x) ** 2).mean())
    assert re.match(r"✗ ex-ae-mse: wrong shape on random input 1 of 3 \(.*\): got \(\), "
                    r"expected \(\d,\)", line), line


def test_wrong_dtype(capsys):
    line = one_line(capsys, "ex-ae-mse", lambda x_hat, x: mse(x_hat, x).double())
    assert "wrong dtype" in line and "got torch.float64, expected torch.float32" in line


def test_wrong_value_says_where_and_by_how_much(capsys):
    def forgot_the_one(mu, logvar):
        return 0.5 * (logvar.exp() + mu**2 - logvar).sum(dim=1)
    line = one_line(capsys, "ex-kl-closed-form", forgot_the_one)
    m = re.search(r"wrong value on random input 1 of 3 \(mu=tensor of shape \((\d+), (\d+)\), "
                  r"logvar=.*\) at index \[0\]: got (\S+), expected (\S+) \(off by (\S+)\); hint: ", line)
    assert m, line
    got, want, off = map(float, m.groups()[2:])
    assert off == pytest.approx(got - want, abs=1e-3) and off == pytest.approx(int(m[2]) / 2, rel=1e-3)


def test_an_exception_in_the_readers_code(capsys):
    line = one_line(capsys, "ex-fit-diagonal", lambda codes: (codes.mean(0), codes.std(0) / 0 + [1]))
    assert line.startswith("✗ ex-fit-diagonal: your function raised TypeError")
    line = one_line(capsys, "ex-fit-diagonal", lambda codes: 1 / 0)
    assert line.startswith("✗ ex-fit-diagonal: your function raised ZeroDivisionError: division by zero "
                           "on random input 1 of 3 (codes=tensor of shape")


def test_a_wrong_signature_names_the_arguments(capsys):
    line = one_line(capsys, "ex-traversal", lambda z, values: z)
    assert line.startswith("✗ ex-traversal: it cannot be called with (z, dim, values): TypeError")


@pytest.mark.parametrize("stub, says", [
    (EXERCISES["ex-slerp"].stub(), "still raises NotImplementedError"),
    (lambda a, b, t: None, "returned None"),
    (lambda a, b, t: ..., "returned Ellipsis"),
    (..., "replace the `...` with your answer"),
    (None, "replace the `...` with your answer"),
])
def test_a_stub_is_not_answered_yet(capsys, stub, says):
    line = one_line(capsys, "ex-slerp", stub)
    assert line.startswith("✗ ex-slerp: not answered yet") and says in line
    assert verdict("ex-slerp", stub).unanswered


def test_not_a_function_and_not_an_id(capsys):
    assert "expected a function, got int" in one_line(capsys, "ex-slerp", 3)
    assert "no exercise has this id; did you mean ex-kl-closed-form" in one_line(capsys, "ex-kl-closedform", 1)


def test_a_wrong_number_is_compared_with_the_model_itself(capsys):
    right = EXERCISES["ex-ae-code-spread"].reference()
    line = one_line(capsys, "ex-ae-code-spread", right * 1.1, 3.0)
    assert line.startswith("✗ ex-ae-code-spread: wrong value:") and f"{right:.4g}" in line
    assert one_line(capsys, "ex-ae-code-spread", right, 3.0).endswith("you predicted 3)")
    assert "expected a number, got str" in one_line(capsys, "ex-ae-code-spread", "2")


def test_a_derivation_off_by_a_little_is_caught_by_monte_carlo(capsys):
    line = one_line(capsys, "ex-gaussian-norm", lambda L: L ** 0.5)   # the large-L limit only
    assert line.startswith("✗ ex-gaussian-norm: wrong value at L=") and "Monte Carlo gives" in line


def test_an_untrained_model_fails_the_training_check(capsys):
    untrained = build_model(ModelConfig("ae", latent_dim=10, channels=(8, 16, 32, 64)))
    assert one_line(capsys, "ex-ae-train-small", untrained).startswith(
        "✗ ex-ae-train-small: not trained enough: its squared error is")
    assert "expected a trained VAE, got AutoEncoder" in one_line(capsys, "ex-vae-train-small", untrained)


def test_the_checks_draw_fresh_inputs():
    seen = []
    for _ in range(2):
        verdict("ex-fit-diagonal", lambda codes: seen.append(codes) or fit_diagonal_gaussian(codes))
    assert not torch.equal(seen[0], seen[3])


# ------------------------------------------------------------------ references and stubs
@pytest.mark.parametrize("exercise", FAST, ids=lambda e: e.id)
def test_reference_passes_and_stub_is_unanswered(exercise):
    assert verdict(exercise.id, exercise.reference()).passed
    assert verdict(exercise.id, exercise.stub()).unanswered


def test_a_right_measurement_does_not_print_the_answer():
    """The page prints the verdict right under a predict-then-measure exercise: a passing line
    must not give the number away; a wrong one says what differs."""
    from vaebook.exercises.checker import close_number, Wrong
    line = close_number(18, 18.0, "the number of active dims", rtol=1e-3)
    assert "18" not in line and "matches" in line
    with pytest.raises(Wrong, match="is 18, you have 15"):
        close_number(15, 18.0, "the number of active dims", rtol=1e-3)


def test_the_command_lists_every_exercise(capsys):
    main(["exercises"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [e.id for e in sorted(EXERCISES.values(),
                                                                        key=lambda e: e.chapter)]
    assert "ex-kl-closed-form        chapter 3  code" in "\n".join(lines)


def test_the_command_fails_when_a_reference_is_wrong(monkeypatch, capsys):
    from dataclasses import replace
    broken = replace(EXERCISES["ex-traversal"], reference=lambda: lambda z, dim, values: z)
    monkeypatch.setitem(EXERCISES, "ex-traversal", broken)
    with pytest.raises(SystemExit) as exit:
        main(["exercises", "--check", "--kind", "code"])
    assert exit.value.code == 1
    assert "FAIL ex-traversal: the reference solution fails: ✗ ex-traversal: wrong shape" in capsys.readouterr().out


# ------------------------------------------------------------------ the book and its notebooks
def exercise_section(path: Path) -> str:
    text = path.read_text()
    assert text.count("\n## Exercises\n") == 1, f"{path.name}: one '## Exercises' section"
    section = text.split("\n## Exercises\n")[1]
    assert "\n## " not in section, f"{path.name}: Exercises is the last section"
    return section


@pytest.mark.parametrize("stem", sorted(CHAPTER_OF))
def test_each_chapter_ends_with_3_to_5_exercises(stem):
    section = exercise_section(ROOT / "chapters" / f"{stem}.qmd")
    ids = re.findall(r"\*\*Exercise `(ex-[\w-]+)`\*\*", section)
    assert 3 <= len(ids) <= 5 and len(set(ids)) == len(ids), ids
    assert {EXERCISES[i].chapter for i in ids} == {CHAPTER_OF[stem]}
    for i in ids:
        assert f'check("{i}", ' in section and f'require("{i}", ' in section, i
    assert section.count('title="Solution"}') == len(ids)


def test_the_book_has_the_exercises_the_issue_asks_for():
    kinds = [e.kind for e in EXERCISES.values()]
    assert len(kinds) >= 20 and kinds.count("code") >= 8
    assert kinds.count("derivation") >= 3 and kinds.count("predict") >= 3
    assert {e.chapter for e in EXERCISES.values() if e.kind == "training"} >= {1, 5, 6}
    in_chapters = {i for stem in CHAPTER_OF for i in re.findall(
        r"\*\*Exercise `(ex-[\w-]+)`\*\*", exercise_section(ROOT / "chapters" / f"{stem}.qmd"))}
    assert in_chapters == set(EXERCISES)


def test_notebooks_drop_the_solutions_and_keep_stub_then_check():
    text = ("# T {#sec-t}\n\n## Exercises\n\n```{python}\ndef f(x):\n    raise NotImplementedError\n```\n\n"
            '::: {.callout-tip collapse="true" title="Solution"}\nIt is x.\n\n```{python}\ndef f(x):\n'
            "    return x\n```\n\n```{python}\n#| include: false\nrequire(\"ex-a\", f)\n```\n:::\n\n"
            '```{python}\ncheck("ex-a", f)\n```\n')
    assert len([c for c in notebooks.to_notebook(text).cells if c.cell_type == "code"]) == 4  # the book's
    cells = notebooks.reader_notebook(text).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    assert code == ["def f(x):\n    raise NotImplementedError", 'check("ex-a", f)']
    assert "Solution" not in "".join(c.source for c in cells)


@pytest.mark.parametrize("stem", sorted(CHAPTER_OF))
def test_chapter_notebooks_give_each_stub_its_check(stem):
    nb = notebooks.reader_notebook((ROOT / "chapters" / f"{stem}.qmd").read_text())
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any("require(" in c for c in code)
    checks = [i for i, c in enumerate(code) if c.startswith("check(")]
    assert checks and all("raise NotImplementedError" in code[i - 1] or "= ..." in code[i - 1]
                          for i in checks)
