"""The shared command-line behaviour of ``train.py`` and ``eval.py`` (absl apps).

``run_absl(main, __doc__)`` runs the script: ``--help`` prints the script's doc, its flags and
every field of the ``--config`` it would use (``--config.a.b=value`` lines), and exits 0;
Ctrl-C outside the training loop's own handling ends with one line, without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence


def config_fields(config, prefix: str = "--config") -> list[str]:
    """Every leaf of an ``ml_collections.ConfigDict`` as ``--config.a.b=value`` lines."""
    lines = []
    for key, value in config.items():
        if hasattr(value, "items"):
            lines += config_fields(value, f"{prefix}.{key}")
        else:
            lines.append(f"{prefix}.{key}={value!r}")
    return lines


_HELP = ("-h", "--help", "-help", "--helpshort", "--helpfull")


def run_absl(main_fn: Callable[[list[str]], int | None], doc: str, argv: Sequence[str] | None = None) -> None:
    """``absl.app.run(main_fn)`` for ``train.py`` and ``eval.py``: ``-h``/``--help`` prints
    ``doc``, the script's flags and every field of the ``--config`` it would use, and exits 0;
    Ctrl-C outside the training loop's own handling ends with one line (exit status 130)."""
    from absl import app, flags

    argv = list(sys.argv if argv is None else argv)
    if any(a in _HELP for a in argv[1:]):
        flags.FLAGS([a for a in argv if a not in _HELP])
        print(f"{doc.strip()}\n\nflags:\n{flags.FLAGS.main_module_help()}\n\nconfig fields (override any as shown):")
        print("\n".join(f"  {line}" for line in config_fields(flags.FLAGS.config)))
        sys.exit(0)
    try:
        app.run(main_fn, argv=argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
