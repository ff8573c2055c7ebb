"""``python -m rexecutor``: the command line (see :mod:`rexecutor.cli`)."""

from rexecutor.cli import main

raise SystemExit(main())
