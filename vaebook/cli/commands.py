"""Command line: ``python -m vaebook train NAME``, ``evaluate``, ``list``.

A failure is reported in one or two lines on stderr, what was wrong and what to do, never a
traceback (``--debug`` shows it). The exit status is 2 for bad input: an option, the data, a
run file or a checkpoint that does not fit; 1 for a failure of the run itself; 130 for Ctrl-C.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..store.presets import make_presets

PACKAGE = str(Path(__file__).resolve().parent.parent)  # all of vaebook/, not only cli/
CELEBA_HINT = ("CelebA is not bundled: download it (Kaggle: jessicali9530/celeba-dataset), then set "
               "VAEBOOK_CELEBA_ROOT or pass --root; the book's CelebA appendix explains how")


class Parser(argparse.ArgumentParser):
    """argparse with a two-line error: the usage of `train` alone would wrap to six lines."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\nrun `{self.prog} --help` for the options\n")


def finite_positive(kind):
    """An argparse type: a finite number above 0 (`kind` int or float); 'nan', 'inf', '0' and
    '-1' are refused with a message that says so."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not a finite number above 0")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m vaebook", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    t = sub.add_parser("train", parents=[common], help="train one preset into runs/ (and with --save, "
                       "make it the book's checkpoint)")
    t.add_argument("name", choices=list(make_presets()), metavar="NAME",
                   help="a preset (`python -m vaebook list` shows them)")
    t.add_argument("--save", action="store_true", help="store the finished run as checkpoint NAME "
                   "($VAEBOOK_CHECKPOINTS or checkpoints/); only the preset's own training")
    t.add_argument("--out", help="folder of the run files (default: $VAEBOOK_RUNS or runs/)")
    t.add_argument("--epochs", type=finite_positive(int), help="experiment: another number of epochs")
    t.add_argument("--train-size", type=finite_positive(int), help="experiment: the first N training images")
    t.add_argument("--sigma", type=finite_positive(float), help="experiment: another decoder std σ (VAEs)")
    t.add_argument("--beta", type=finite_positive(float), help="experiment: another KL weight β (VAEs)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    t.add_argument("--dataset", choices=["faces", "celeba"], help="default: $VAEBOOK_DATASET or faces")
    t.add_argument("--root", help="CelebA folder (default: $VAEBOOK_CELEBA_ROOT)")
    t.add_argument("--fresh", action="store_true", help="discard a half-finished run and start again")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=train)
    e = sub.add_parser("evaluate", parents=[common],
                       help="measure every cached model on the test split; print a table")
    e.add_argument("names", nargs="*", help="only these checkpoints")
    e.add_argument("--update", action="store_true", help="write the measured metrics into the manifest")
    e.set_defaults(func=evaluate)
    fg = sub.add_parser("figures", parents=[common], help="the book's stored figures: list them, or "
                        "recompute and store them (--update)")
    fg.add_argument("names", nargs="*", help="only these figures")
    fg.add_argument("--update", action="store_true", help="compute and store them beside the checkpoints")
    fg.set_defaults(func=figures)
    li = sub.add_parser("list", parents=[common], help="the book's models and whether each is cached")
    li.add_argument("--names", action="store_true", help="only the names, one a line")
    li.set_defaults(func=list_models)
    ex = sub.add_parser("exercises", parents=[common], help="the chapters' exercises; --check runs "
                        "every reference solution and stub through the checker")
    ex.add_argument("--check", action="store_true", help="exit 0 only when every reference passes "
                    "its check and every stub fails it with the checker's message")
    ex.add_argument("--kind", action="append", choices=["code", "derivation", "predict", "training"],
                    help="with --check: only exercises of this kind (repeat for several)")
    ex.set_defaults(func=exercises)
    return p


def exercises(args) -> None:
    from ..exercises.catalogue import check_all, listing
    if not args.check:
        print("\n".join(listing()))
    elif not check_all(args.kind):
        sys.exit(1)


def train(args) -> None:
    from .retrain import train as run
    run(args)


def evaluate(args) -> None:
    from ..metrics.evaluate import evaluate_all
    evaluate_all(args.names or None, update=args.update)
    if args.update and not args.names:  # every model measured again: the figures built on them too
        figures(argparse.Namespace(names=[], update=True))


def figures(args) -> None:
    from ..metrics import book_figures, stored  # noqa: F401  (importing it registers the figures)
    names = args.names or sorted(stored.REGISTRY)
    unknown = [n for n in names if n not in stored.REGISTRY]
    if unknown:
        raise LookupError(f"no book figure named {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(sorted(stored.REGISTRY)) or 'none'}")
    if not args.update:
        saved = stored.files.read_all()
        for name in names:
            fig = stored.REGISTRY[name]
            state = "stored" if name in saved else "not stored"
            print(f"{name:32s} {state:10s} from {', '.join(fig.models)}")
        return
    for name, seconds in stored.update(names).items():
        print(f"{name:32s} computed and stored in {seconds:.1f} s", flush=True)


def list_models(args) -> None:
    from ..store.checkpoints import read_manifest
    presets = make_presets()
    if args.names:
        print("\n".join(presets))
        return
    manifest = read_manifest()
    for name, preset in presets.items():
        status = "cached" if name in manifest else "missing"
        print(f"{name:15s} {status:8s} {preset.about}")


def report(error: BaseException) -> tuple[int, list[str]]:
    """The exit status and the one or two lines that say what went wrong and what to do."""
    from ..train.loop import NonFiniteLossError
    # CelebA's errors come only from its module once imported; importing it here (torchvision)
    # would make every report of a mistyped option wait seconds
    celeba = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.data.celeba")
    DatasetNotFoundError = getattr(celeba, "DatasetNotFoundError", ())
    CelebAImageError = getattr(celeba, "CelebAImageError", ())

    def flat(text) -> str:
        return " ".join(str(text).split())

    if isinstance(error, KeyboardInterrupt):
        return 130, ["interrupted; every finished epoch is in the run file: the same command resumes"]
    if isinstance(error, DatasetNotFoundError):
        return 2, [flat(str(error).split("\n\n")[0]), CELEBA_HINT]
    if isinstance(error, CelebAImageError) or (
            isinstance(error, (ValueError, LookupError, RuntimeError)) and is_ours(error)):
        return 2, [flat(error)]
    if isinstance(error, (NonFiniteLossError, OSError)):
        return 1, [flat(error)]
    return 1, [f"{type(error).__name__}: {flat(error)}",
               "this looks like a bug in vaebook: rerun with --debug to see where, and report it"]


def is_ours(error: BaseException) -> bool:
    """Whether `error` was raised with a message for the user (by vaebook), not deep in a library."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is None or str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(PACKAGE)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:  # output piped into `head`, say: not a failure to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except (Exception, KeyboardInterrupt) as error:
        if args.debug:
            raise
        code, lines = report(error)
        print(f"error: {lines[0]}", *lines[1:], sep="\n", file=sys.stderr)
        sys.exit(code)
