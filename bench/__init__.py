"""pytest-benchmark tests of the optimizer steps (not collected by the default ``pytest`` run,
whose testpaths is ``tests``). The benchmark itself lives in ``fusedopt.bench``
(``python -m fusedopt bench``) so that an installed wheel has it.

    python -m pytest bench -q -p no:cacheprovider --benchmark-disable   # CI speed: checks only
    python -m pytest bench -q -p no:cacheprovider                       # with timings
"""
