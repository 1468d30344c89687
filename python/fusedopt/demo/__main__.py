"""``python -m fusedopt.demo`` (same as ``python -m fusedopt demo``)."""

from .cli import main

raise SystemExit(main())
