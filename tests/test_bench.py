"""make bench's issue-26 figures (vaebook/cli/bench_book.py): each printed next to its target,
a chapter-timing run saved and read back. Nothing here times anything against a bound."""
import json

import pytest

from vaebook.cli import bench_book


def test_a_figure_is_marked_when_it_misses_its_target():
    assert bench_book.against(19.9, 20) == "target <= 20"
    assert bench_book.against(20.1, 20) == "target <= 20: MISSED"
    assert bench_book.against(3100, 3000, at_most=False) == "target >= 3,000"
    assert bench_book.against(2900, 3000, at_most=False) == "target >= 3,000: MISSED"


RUN = {"machine": "m", "date": "2026-12-06 01:00", "load_before": 0.3,
       "chapters": [{"name": "01-a", "seconds": 12.0, "peak_mb": 900},
                    {"name": "02-b", "seconds": 25.5, "peak_mb": 2300},
                    {"name": "03-c", "seconds": 60.0, "peak_mb": 1000}]}


def test_report_of_a_chapter_run():
    lines = bench_book.report_chapters(RUN)
    assert "load average 0.3" in lines[0]
    chapters = {line.split()[1]: line for line in lines[1:4]}
    assert chapters["01-a"].endswith("(target <= 20)") and chapters["02-b"].endswith("(target <= 20: MISSED)")
    assert lines[4].startswith("whole book") and "97.5 s" in lines[4] and "MISSED" in lines[4]   # > 90 s
    assert lines[5].startswith("largest kernel: 2,300 MB, 02-b") and "MISSED" in lines[5]       # > 2 GB


def test_the_last_fresh_clone_run_is_reported_against_its_targets(tmp_path):
    path = tmp_path / "fresh.json"
    assert "no run recorded" in bench_book.report_fresh(path)[0]
    old = {"date": "2026-12-01 00:00", "machine": "m", "commit": "0" * 40, "load_before": 2.0,
           "commands": {"make book": 999.0}}
    new = {"date": "2026-12-06 07:00", "machine": "AMD EPYC, 2 CPUs", "commit": "abcdef1" + "0" * 33,
           "load_before": 0.4, "commands": {"make book": 170.4, "make test": 361.0}}
    path.write_text(json.dumps([old, new]))
    head, book, test = bench_book.report_fresh(path)
    assert "2026-12-06 07:00 at abcdef1" in head and "load average 0.4" in head
    assert book.split() == ["make", "book", "2", "min", "50", "s", "=", "170", "s", "(target", "<=", "180)"]
    assert test.endswith("6 min 01 s = 361 s   (target <= 360: MISSED)")
    path.write_text(json.dumps({"commands": {}}))
    with pytest.raises(ValueError, match="not a list of fresh-clone runs"):
        bench_book.report_fresh(path)


def test_a_saved_run_is_read_back_and_a_foreign_file_refused(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(RUN))
    assert bench_book.read_chapter_timings(path) == RUN
    path.write_text(json.dumps({"chapters": [{"name": "x", "seconds": 1.0}]}))
    with pytest.raises(ValueError, match="not a chapter-timing run"):
        bench_book.read_chapter_timings(path)


def test_a_chapter_is_timed_in_its_own_kernel_with_its_peak_memory(tmp_path):
    (tmp_path / "notebooks").mkdir()
    qmd = tmp_path / "01-tiny.qmd"
    qmd.write_text("# Tiny\n\n```{python}\nblock = bytearray(300 * 2**20)\n```\n")
    run = bench_book.time_chapters([qmd], tmp_path, save=tmp_path / "out" / "run.json", warm=False)
    assert bench_book.read_chapter_timings(tmp_path / "out" / "run.json") == run
    [chapter] = run["chapters"]
    assert chapter["name"] == "01-tiny" and chapter["seconds"] > 0
    assert 300 < chapter["peak_mb"] < 2000                     # the kernel held the 300 MB block


def test_render_figures_on_every_core_and_on_one(capsys):
    from vaebook.data.renderer import usable_cores
    rates = bench_book.bench_render(n=128, repeats=1)
    assert set(rates) == {usable_cores(), 1} and all(r > 0 for r in rates.values())
    out = capsys.readouterr().out
    assert "faces/s on" in out and "target >= 3,000" in out and "per CPU-second" in out
