"""``python -m vaebook exercises``: the list of exercises; with ``--check``, every reference
solution through its check (it must pass) and every stub (it must fail with the checker's
one-line message, not a traceback)."""
from __future__ import annotations

import time

from .checker import EXERCISES, verdict


def listing() -> list[str]:
    return [f"{e.id:24s} chapter {e.chapter}  {e.kind:10s}  {e.title}"
            for e in sorted(EXERCISES.values(), key=lambda e: e.chapter)]


def check_all(kinds=None, out=print) -> bool:
    """Run the reference and the stub of every exercise (of `kinds`, default all); True when
    every reference passes and every stub is reported as not answered."""
    ok = True
    for e in sorted(EXERCISES.values(), key=lambda e: e.chapter):
        if kinds and e.kind not in kinds:
            continue
        start, cpu = time.perf_counter(), time.process_time()
        try:
            right = verdict(e.id, e.reference())
        except Exception as error:  # the reference solution itself broke: a bug of the package
            right = None
            out(f"FAIL {e.id}: the reference solution raised {type(error).__name__}: {error}")
        stub = verdict(e.id, e.stub())
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        good = right is not None and right.passed and stub.unanswered
        ok &= good
        if right is not None and not right.passed:
            out(f"FAIL {e.id}: the reference solution fails: {right}")
        if not stub.unanswered:
            out(f"FAIL {e.id}: the stub is not reported as unanswered: {stub}")
        if good:
            out(f"ok   {e.id:24s} {seconds:5.1f} s ({cpu:5.1f} s cpu)  {right.message}")
    return ok
