"""Tests of the command line, in-process (`vaebook.__main__.main([...])`) to stay fast."""
from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("vaebook.faces")  # make_presets() needs it

from vaebook.__main__ import main, parser  # noqa: E402
from vaebook.presets import make_presets  # noqa: E402


def subparser(name: str) -> argparse.ArgumentParser:
    actions = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return actions[0].choices[name]


def test_train_choices_are_the_presets():
    name = next(a for a in subparser("train")._actions if a.dest == "name")
    assert list(name.choices) == list(make_presets())


def test_list_shows_every_preset_and_whether_it_is_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEBOOK_CHECKPOINTS", str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"ae": {"file": "ae.safetensors"}}))
    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    presets = make_presets()
    assert [line.split()[0] for line in lines] == list(presets)
    status = {line.split()[0]: line.split()[1] for line in lines}
    assert status["ae"] == "cached"
    assert all(status[n] == "missing" for n in presets if n != "ae")
    assert presets["vae"].about in next(line for line in lines if line.startswith("vae "))


def test_list_with_no_checkpoints_at_all(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAEBOOK_CHECKPOINTS", str(tmp_path / "none"))
    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(make_presets()) and all(line.split()[1] == "missing" for line in lines)


def test_train_unknown_name_exits_with_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "nosuchname"])
    assert e.value.code != 0
    err = capsys.readouterr().err
    assert "nosuchname" in err and "invalid choice" in err
    for name in make_presets():
        assert repr(name) in err or name in err


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code != 0 and "usage" in capsys.readouterr().err


def test_train_options_parse():
    args = parser().parse_args(["train", "vae", "--epochs", "2", "--train-size", "64",
                                "--device", "cpu", "--dataset", "faces", "--fresh", "--quiet"])
    assert (args.name, args.epochs, args.train_size, args.device, args.dataset, args.fresh, args.quiet) \
        == ("vae", 2, 64, "cpu", "faces", True, True)
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "vae", "--dataset", "mnist"])
