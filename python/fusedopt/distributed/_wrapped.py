"""What both MPI wrappers show of the optimizer they wrap, so schedulers drive them unchanged."""

from __future__ import annotations

from typing import Any


class WrapsOptimizer:
    """``param_groups`` and ``defaults`` are the wrapped optimizer's own (the same dicts)."""

    optimizer: Any

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups  # type: ignore[no-any-return]

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults  # type: ignore[no-any-return]
