"""``python -m fusedopt.bench`` (same as ``python -m fusedopt bench``)."""

from .cli import main

raise SystemExit(main())
