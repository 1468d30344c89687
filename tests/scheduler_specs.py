"""The spec format of tests/data/scheduler_golden.json, shared by tools/make_scheduler_golden.py
(which writes it, running torch) and tests/test_schedulers.py (which replays it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def decode(value: Any, build_sub: Callable[[str, dict[str, Any]], Any]) -> Any:
    """A spec value as an argument: {"$fn": source} is a lambda, {"$sched": [name, kwargs]} a
    sub-scheduler built by `build_sub`, lists element by element."""
    if isinstance(value, dict) and set(value) == {"$fn"}:
        return eval(value["$fn"], {"math": math})
    if isinstance(value, dict) and set(value) == {"$sched"}:
        name, kwargs = value["$sched"]
        return build_sub(name, kwargs)
    if isinstance(value, list):
        return [decode(v, build_sub) for v in value]
    return value
