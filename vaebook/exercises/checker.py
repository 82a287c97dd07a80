"""The checker: ``check("ex-id", answer)`` prints one line, passed or what differs.

Every exercise registers an :class:`Exercise`: its reference answer, the stub a reader starts
from, and a test that compares an answer with the reference on fresh random inputs (or, for a
measured number, on a value recomputed from the checkpoint). A test reports a difference by
raising :class:`Wrong` with the line to print; :func:`verdict` turns anything else the reader's
code raises into one line too, so the reader never sees a traceback for a wrong answer.
"""
from __future__ import annotations

import inspect
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch

KINDS = ("code", "derivation", "predict", "training")
EXERCISES: dict[str, "Exercise"] = {}


@dataclass(frozen=True)
class Exercise:
    id: str
    chapter: int
    kind: str                          # one of KINDS
    title: str
    test: Callable[[Any], str]         # raises Wrong, or returns what passed ("5 random inputs")
    reference: Callable[[], Any]       # the package's answer (a function, a number, a model)
    stub: Callable[[], Any]            # what the reader starts from


def exercise(id: str, chapter: int, kind: str, title: str, *, reference, stub):
    """Decorator: register the decorated test function as exercise `id`."""
    assert kind in KINDS and id.startswith("ex-") and id not in EXERCISES, id

    def register(test):
        EXERCISES[id] = Exercise(id, chapter, kind, title, test, reference, stub)
        return test
    return register


class Wrong(Exception):
    """An answer that differs from the reference; the message is the line shown to the reader."""


class Unanswered(Wrong):
    """A stub: NotImplementedError, or `...`/None where an answer should be."""


@dataclass(frozen=True)
class Verdict:
    id: str
    passed: bool
    message: str
    unanswered: bool = False

    def __str__(self) -> str:  # always one line, whatever the reader's objects print as
        return f"{'✓' if self.passed else '✗'} {self.id}: {' '.join(self.message.split())}"


def verdict(id: str, answer, prediction=None) -> Verdict:
    """Test `answer` for exercise `id` without printing; never raises for a wrong answer."""
    if id not in EXERCISES:
        near = [k for k in EXERCISES if k.split("-")[1:2] == id.split("-")[1:2]]
        return Verdict(id, False, f"no exercise has this id{'; did you mean ' + near[0] if near else ''}"
                                  " (`python -m vaebook exercises` lists them)")
    try:
        unanswered_value(answer)
        passed = EXERCISES[id].test(answer)
    except Unanswered as e:
        return Verdict(id, False, str(e), unanswered=True)
    except Wrong as e:
        return Verdict(id, False, str(e))
    except Exception as e:  # an error in the reader's code that a test did not catch itself
        return Verdict(id, False, f"your answer raised {describe_error(e)}")
    if prediction is not None and prediction is not Ellipsis:
        passed += f"; you predicted {short(prediction)}"
    return Verdict(id, True, f"passed ({passed})")


def check(id: str, answer, prediction=None) -> None:
    """Print one line: whether `answer` solves exercise `id`, else what differs and a hint."""
    print(verdict(id, answer, prediction))


class ExerciseFailed(AssertionError):
    """Raised by :func:`require`: the book's solution of an exercise is wrong."""


def require(id: str, answer) -> None:
    """The book's hidden check of its own solution: raise unless `answer` passes."""
    result = verdict(id, answer)
    if not result.passed:
        raise ExerciseFailed(str(result))


# ---------------------------------------------------------------------- pieces the tests use
def unanswered_value(value) -> None:
    if value is Ellipsis or value is None:
        raise Unanswered("not answered yet: replace the `...` with your answer and run the cell again")


def describe_error(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}" + (f": {text[:160]}" if text else "")


def call(fn, inputs: dict, where: str):
    """fn(**inputs), with the reader's exceptions turned into one line."""
    if not callable(fn):
        raise Wrong(f"expected a function, got {type(fn).__name__} {short(fn)}")
    try:
        inspect.signature(fn).bind(**inputs)
    except TypeError as e:
        raise Wrong(f"it cannot be called with ({', '.join(inputs)}): {describe_error(e)}") from None
    except ValueError:       # a builtin without a signature: just call it
        pass
    try:
        out = fn(**inputs)
    except NotImplementedError:
        raise Unanswered("not answered yet: the function still raises NotImplementedError; "
                         "write its body and run the cell again") from None
    except Exception as e:
        raise Wrong(f"your function raised {describe_error(e)} {where}") from None
    if out is None or out is Ellipsis:
        raise Unanswered(f"not answered yet: the function returned {out!r} {where}; "
                         "it should `return` its result")
    return out


def short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}" if value.dim() else f"tensor({value.item():.4g})"
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return f"{value:.4g}"
    if isinstance(value, torch.nn.Module):
        return f"(a {type(value).__name__})"
    text = " ".join(repr(value).split())
    return text if len(text) < 40 else text[:37] + "..."


def inputs_text(inputs: dict) -> str:
    return ", ".join(f"{k}={short(v)}" for k, v in inputs.items())


def same_tensor(got, want: torch.Tensor, where: str, hint: str, rtol=1e-4, atol=1e-5) -> None:
    """Raise Wrong for a non-tensor, another shape, another dtype or another value than `want`."""
    if isinstance(got, (int, float)) and want.dim() == 0:
        got = torch.tensor(float(got), dtype=want.dtype)
    if not isinstance(got, torch.Tensor):
        raise Wrong(f"wrong type {where}: got {type(got).__name__}, expected a tensor of shape "
                    f"{tuple(want.shape)}")
    if got.shape != want.shape:
        raise Wrong(f"wrong shape {where}: got {tuple(got.shape)}, expected {tuple(want.shape)}; "
                    "check which dimension you sum or average over")
    if got.dtype != want.dtype:
        raise Wrong(f"wrong dtype {where}: got {got.dtype}, expected {want.dtype}; "
                    "compute in the inputs' dtype (no .double() or .float() on the way)")
    got = got.detach()
    bad = ~torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        g, w = got[index].item(), want[index].item()
        at = f" at index {list(index)}" if index else ""
        off = f"off by {abs(g - w):.3g}" if math.isfinite(g) else "not finite"
        raise Wrong(f"wrong value {where}{at}: got {g:.6g}, expected {w:.6g} ({off}); hint: {hint}")


def compare_functions(answer, reference, cases: list[dict], hint: str, **tol) -> str:
    """Call the reader's function and the reference on each case; raise Wrong at the first that
    differs. Returns what passed, for the verdict."""
    for n, inputs in enumerate(cases, 1):
        where = f"on random input {n} of {len(cases)} ({inputs_text(inputs)})"
        want = reference(**inputs)
        got = call(answer, inputs, where)
        if isinstance(want, tuple):
            if not isinstance(got, tuple) or len(got) != len(want):
                raise Wrong(f"wrong type {where}: expected a tuple of {len(want)} values, got {short(got)}")
            for i, (g, w) in enumerate(zip(got, want)):
                same_tensor(g, w, f"{where}, value {i + 1} of {len(want)}", hint, **tol)
        else:
            same_tensor(got, want, where, hint, **tol)
    return f"matches the reference on {len(cases)} random inputs"


def close_number(answer, want: float, what: str, rtol: float, atol: float = 0.0) -> str:
    """A measured number against the value recomputed from the model itself. The passing line
    leaves the number out: the rendered book prints it right under a predict-then-measure
    exercise, where it would give the answer away."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if not isinstance(answer, (int, float)) or isinstance(answer, bool):
        raise Wrong(f"expected a number, got {type(answer).__name__} {short(answer)}")
    if not math.isfinite(answer) or abs(answer - want) > atol + rtol * abs(want):
        raise Wrong(f"wrong value: {what} is {want:.4g}, you have {answer:.4g} "
                    f"(off by {abs(answer - want):.3g}); hint: measure it as the exercise says")
    return f"{what}: your measurement matches the model's"   # no number: the page shows this line


def fresh_generator() -> torch.Generator:
    """A generator seeded from the OS: every check draws new inputs."""
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(6), "little"))


def test_faces(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The first `n` test faces, or `n` drawn at random with `generator`: (n, 3, 64, 64)."""
    from ..data.loading import load_dataset, stack_images
    data = load_dataset("faces", "test")
    indices = range(n) if generator is None else torch.randperm(len(data), generator=generator)[:n]
    return stack_images(data, indices)
