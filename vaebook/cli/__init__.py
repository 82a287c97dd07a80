"""The command line, ``python -m vaebook`` (``commands``): ``train`` (``retrain``), ``evaluate``,
``list``; and ``python -m vaebook.cli.bench``, the speed figures of ``make bench``."""
from .commands import main, parser, report

__all__ = ["main", "parser", "report"]
