"""Lets ``python -m pytest bench --benchmark-disable`` run where pytest-benchmark is not
installed (CI installs ``.[test]``; pytest-benchmark is in the ``bench`` extra): a stand-in
``benchmark`` fixture that calls the function once, as pytest-benchmark does when disabled,
and the options it would add."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

try:
    import pytest_benchmark  # noqa: F401  (already imported by pytest when installed)

    HAVE_PYTEST_BENCHMARK = True
except ImportError:
    HAVE_PYTEST_BENCHMARK = False

if not HAVE_PYTEST_BENCHMARK:

    def pytest_addoption(parser: pytest.Parser) -> None:
        group = parser.getgroup("benchmark (pytest-benchmark not installed: stand-in)")
        group.addoption("--benchmark-disable", action="store_true", help="accepted; the checks run once")
        group.addoption("--benchmark-skip", action="store_true", help="accepted; ignored")
        group.addoption("--benchmark-only", action="store_true", help="accepted; ignored")

    class _Once:
        """pytest-benchmark's fixture when disabled: run the function once."""

        def __init__(self) -> None:
            self.extra_info: dict[str, Any] = {}

        def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        def pedantic(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                     **_: Any) -> Any:
            return fn(*args, **(kwargs or {}))

    @pytest.fixture
    def benchmark() -> _Once:
        return _Once()
