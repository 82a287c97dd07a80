"""``python -m vaebook``: the command line, in :mod:`vaebook.cli`."""
from .cli import main, parser  # noqa: F401  (the `vaebook` script and the tests call these)

if __name__ == "__main__":
    main()
