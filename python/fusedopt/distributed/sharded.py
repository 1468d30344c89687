"""ZeRO stage 1: each rank keeps the optimizer state of one contiguous shard of the flat parameter
range and steps only that shard.

Per step: the gradients are averaged into each rank's shard (reduce-scatter, rank order, see
_comm.py); when the optimizer clips by norm or checks for non-finite gradients, the global norm
is folded from every shard's chunk partials on the single-process norm pass's own grid (one small
allreduce), so the clip coefficient, the skip decision and ``last_grad_norm`` are the
single-process ones on every rank; the shard is stepped by the fused kernel (one native call,
state allocated for the shard only); the parameters are all-gathered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _core
from .._checks import flag
from ..optim._types import GradsLike
from ..optim.optimizer import Optimizer
from ._comm import Collectives
from ._layout import FlatLayout, aligned_empty, shard_bounds
from ._wrapped import WrapsOptimizer

_NOT_HYPER = ("params", "param_names")


def _hypers(group: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k not in _NOT_HYPER}


class ShardedOptimizer(WrapsOptimizer):
    """ZeRO-1 over any element-wise fusedopt optimizer, built from `optimizer` (its class,
    hyperparameters, param groups and options; hand it over before its first step, or its state
    is sharded from its state_dict). Every parameter must have one dtype.

    Per-group norm clipping (``clip_scope="group"``) needs one group here; use
    ``clip_scope="global"`` with several. ``param_groups`` are `optimizer`'s own dicts (edit them,
    or drive them with a scheduler, as usual); ``state_dict()`` is this rank's shard,
    ``consolidated_state_dict()`` the whole state on rank 0 in a plain optimizer's format.
    """

    def __init__(self, optimizer: Any, comm: Any = None, *, broadcast: bool = True) -> None:
        if _core.rule_info(optimizer.rule)["reduce_passes"]:  # rule.hpp: whole-array norms and shapes
            raise TypeError(f"optimizer: {type(optimizer).__name__} reduces over whole arrays (trust ratios, "
                            "factored moments); a flat shard of them is not sharded here")
        if optimizer.state_dtype is not None:  # (the inner optimizer would otherwise drop it)
            raise TypeError(f"optimizer: state_dtype={optimizer.state_dtype!r} is not sharded: int8 blocks and "
                            "stochastic rounding follow each parameter, not the flat shards (use DataParallel)")
        self.layout = layout = FlatLayout(optimizer)
        if optimizer.stochastic_rounding and layout.dtype.itemsize == 2:
            raise TypeError("optimizer: stochastic_rounding is not sharded: its random bits follow each parameter, "
                            "not the flat shards (use DataParallel, or master_weights)")
        self.optimizer = optimizer
        self.comm = Collectives(comm)
        self.needs_norm = optimizer.max_grad_norm is not None or optimizer.nonfinite != "propagate"
        if self.needs_norm and optimizer.clip_scope == "group" and len(optimizer.param_groups) > 1:
            raise ValueError(
                "clip_scope: per-group norms over several param groups are not sharded; use clip_scope='global'"
            )
        self.bounds = shard_bounds(layout.total, self.comm.size)
        self.lo, self.hi = self.bounds[self.comm.rank], self.bounds[self.comm.rank + 1]
        # The flat parameter range: the single parameter's own buffer, else a copy kept here.
        self.flat = layout.flat_view(layout.params[0]) if layout.single else aligned_empty(layout.total, layout.dtype)
        if not layout.single:
            layout.copy_in(self.flat)
        if flag(broadcast, "broadcast") and self.comm.size > 1:
            self.comm.broadcast(self.flat)
            if not layout.single:
                layout.copy_out(self.flat)
        self._packed = aligned_empty(0 if layout.single else layout.total, layout.dtype)
        self._grad_shard = aligned_empty(self.hi - self.lo, layout.dtype)
        # One inner parameter per group: the group's part of this shard (possibly empty).
        self._pieces = [(min(max(a, self.lo), self.hi), max(min(b, self.hi), self.lo)) for a, b in layout.group_ranges]
        groups = [
            {**_hypers(g), "params": [self.flat[a:b] if a < b else np.zeros(0, layout.dtype)]}
            for g, (a, b) in zip(optimizer.param_groups, self._pieces)
        ]  # an empty piece gets its own empty array (empty views of one address count as overlapping)
        cls: type[Optimizer] = type(optimizer)
        self.inner = cls.__new__(cls)  # the same class, built by the base (its groups carry every hyperparameter)
        Optimizer.__init__(
            self.inner,
            groups,
            optimizer.defaults,
            backend=optimizer.backend,
            max_grad_norm=optimizer.max_grad_norm,
            clip_value=optimizer.clip_value,
            clip_scope=optimizer.clip_scope,
            nonfinite=optimizer.nonfinite,
            master_weights=optimizer.master_weights,
        )
        self._grad_pieces = [
            self._grad_shard[a - self.lo : b - self.lo] if a < b else np.zeros(0, layout.dtype) for a, b in self._pieces
        ]
        # The per-element state arrays: the rule's, and the engine's own (a 16-bit parameter's master copy).
        self._slots = set(_core.rule_info(optimizer.rule)["slots"]).union(
            *(optimizer._engine.slot_shapes(g, optimizer.step_count, "", g["params"][0])
              for g in optimizer.param_groups if g["params"])
        )
        if optimizer.step_count > 0:
            self.load_state_dict(optimizer.state_dict())

    # ---- the step -----------------------------------------------------------------------------

    def step(self, grads: GradsLike) -> None:
        """Average `grads` over the ranks, step this rank's shard, gather the parameters."""
        layout = self.layout
        flat_grads = layout.pack(layout.grad_list(grads), self._packed)
        self.comm.reduce_scatter_mean(flat_grads, self.bounds, self._grad_shard)
        if not layout.single:  # the parameters may have been edited (or loaded) in place since
            layout.copy_in(self.flat, self.lo, self.hi)
        for mine, theirs in zip(self.inner.param_groups, self.optimizer.param_groups):
            mine.update(_hypers(theirs))  # a scheduler drives the user's groups
        norm = None
        if self.needs_norm:
            shard = layout.views(self._grad_shard, self.lo, self.hi)
            norm = _core.shard_norm(shard, layout.total, self.lo, self.comm.allreduce_sum)
        skipped = self.inner.skipped_steps
        self.inner._engine.step(self._grad_pieces, grad_norm=norm)
        if self.inner.skipped_steps != skipped:
            return  # every rank skipped (the norm is global): nothing changed
        self.comm.allgather(self.flat, self.bounds)
        if not layout.single:
            layout.copy_out(self.flat)

    # ---- what a plain optimizer shows ---------------------------------------------------------

    @property
    def step_count(self) -> int:
        return self.inner.step_count

    @property
    def skipped_steps(self) -> int:
        return self.inner.skipped_steps

    @property
    def last_grad_norm(self) -> float | None:
        """The global gradient norm of the last step (the same bits on every rank)."""
        return self.inner.last_grad_norm

    def state_bytes(self) -> int:
        """Bytes of optimizer state arrays this rank holds."""
        return sum(v.nbytes for st in self.inner.state.values() for v in st.values() if isinstance(v, np.ndarray))

    # ---- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """This rank's shard: the inner optimizer's state_dict and where the shard lies. Loads
        back into a ShardedOptimizer of the same world size (each rank its own)."""
        sd = self.inner.state_dict()
        sd["shard"] = {"world_size": self.comm.size, "rank": self.comm.rank, "bounds": list(self.bounds)}
        return sd

    def consolidated_state_dict(self) -> dict[str, Any] | None:
        """The whole state in a plain optimizer's state_dict format (keys, param_groups,
        counters), gathered on rank 0 (None on the others). Collective: every rank calls it. It
        loads into the original optimizer, or into a ShardedOptimizer at any world size."""
        mine = (self.lo, self._pieces, self.inner.state_dict())
        parts = self.comm.gather_objects(mine)
        if parts is None:
            return None
        layout = self.layout
        out: dict[str, Any] = {}
        for i, (key, p) in enumerate(zip(layout.keys, layout.params)):
            o0, o1 = layout.offsets[i], layout.offsets[i + 1]
            j = layout.group_of[i]
            pieces: list[tuple[int, int, int, Any]] = []
            for _, ranges, sd in parts:
                a, b = ranges[j]
                if max(a, o0) < min(b, o1) or (o0 == o1 and a <= o0 <= b and not pieces):
                    pieces.append((max(a, o0), min(b, o1), a, sd["state"].get(j)))
            merged = _merge(pieces, o0, p, self._slots, key)
            if merged is not None:
                out[key] = merged
        sd = self.optimizer.state_dict()  # its param_groups entries (keys, names, hyperparameters)
        sd["state"] = out
        sd["step_count"] = self.inner.step_count
        sd["skipped_steps"] = self.inner.skipped_steps
        return sd  # type: ignore[no-any-return]

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load this rank's state_dict() (same world size), or a consolidated one (any world size;
        every rank passes the same dict)."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        shard = state_dict.get("shard")
        if shard is not None:
            if shard.get("world_size") != self.comm.size or list(shard.get("bounds", ())) != self.bounds:
                raise ValueError(
                    f"state_dict: a shard of world size {shard.get('world_size')}, this is {self.comm.size}; "
                    "load a consolidated_state_dict() to change the world size"
                )
            sd = {k: v for k, v in state_dict.items() if k != "shard"}
        else:
            sd = self._shard_of(state_dict)
        self.inner.load_state_dict(sd)
        for mine, theirs in zip(self.inner.param_groups, self.optimizer.param_groups):
            theirs.update(_hypers(mine))

    def _shard_of(self, full: Mapping[str, Any]) -> dict[str, Any]:
        """A consolidated state_dict cut to this rank's shard, as the inner optimizer's state_dict."""
        groups = full.get("param_groups")
        state = full.get("state")
        if not isinstance(groups, list) or not isinstance(state, Mapping):
            raise ValueError("state_dict: expected 'state' and 'param_groups' entries")
        if len(groups) != len(self._pieces):
            raise ValueError(f"state_dict: has {len(groups)} param groups, the optimizer has {len(self._pieces)}")
        layout = self.layout
        saved_keys = [k for g in groups for k in (g.get("params", []) if isinstance(g, Mapping) else [])]
        if len(saved_keys) != len(layout.params):
            raise ValueError(f"state_dict: has {len(saved_keys)} params, the optimizer has {len(layout.params)}")
        inner_state: dict[int, dict[str, Any]] = {}
        for j, (a, b) in enumerate(self._pieces):
            per_param = []
            for i, sk in enumerate(saved_keys):
                o0, o1 = layout.offsets[i], layout.offsets[i + 1]
                lo, hi = max(a, o0), min(b, o1)
                if lo < hi:
                    per_param.append((sk, state.get(sk), lo - o0, hi - o0))
            st = _cut(per_param, b - a, self._slots)
            if st is not None:
                inner_state[j] = st
        return {
            "state": inner_state,
            "param_groups": [{**_hypers(g), "params": [j]} for j, g in enumerate(groups)],
            "step_count": full.get("step_count", 0),
            "skipped_steps": full.get("skipped_steps", 0),
        }

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("ShardedOptimizer holds an MPI communicator: save state_dict() or consolidated_state_dict()")

    def __repr__(self) -> str:
        return (
            f"ShardedOptimizer({type(self.optimizer).__name__}, rank {self.comm.rank} of {self.comm.size}, "
            f"elements [{self.lo}, {self.hi}) of {self.layout.total})"
        )


def _same_counters(states: list[Mapping[str, Any]], slots: set[str], what: str) -> dict[str, Any]:
    """The non-array entries (step, mu_product, ...), which every piece must agree on."""
    first = {k: v for k, v in states[0].items() if k not in slots}
    for st in states[1:]:
        other = {k: v for k, v in st.items() if k not in slots}
        if other.keys() != first.keys() or any(
            not (other[k] == first[k] or (isinstance(v, float) and math.isnan(v) and math.isnan(other[k])))
            for k, v in first.items()
        ):
            raise ValueError(f"state_dict: {what} spans parameters with different counters ({first} vs {other})")
    return first


def _merge(pieces: list[tuple[int, int, int, Any]], o0: int, p: np.ndarray, slots: set[str], key: Any) -> Any:
    """One parameter's state from the shards' pieces (a, b: its elements; start: the piece's)."""
    states = [st for _, _, _, st in pieces if st is not None]
    if not states:
        return None
    if len(states) != len(pieces):
        raise ValueError(f"parameter {key!r}: part of it has optimizer state and part has none")
    out = _same_counters(states, slots, f"parameter {key!r}")
    for name in slots & states[0].keys():
        arr = np.empty(p.shape, states[0][name].dtype)
        flat = arr.reshape(-1)
        for a, b, start, st in pieces:
            flat[a - o0 : b - o0] = st[name][a - start : b - start]
        out[name] = arr
    return out


def _cut(per_param: list[tuple[Any, Any, int, int]], n: int, slots: set[str]) -> Any:
    """One inner parameter's state from the saved states of the parameters it covers."""
    states = [st for _, st, _, _ in per_param if st is not None]
    if not states:
        return None
    if len(states) != len(per_param):
        raise ValueError("state_dict: a shard covers parameters with state and parameters without")
    out = _same_counters(states, slots, "a shard")
    for name in slots & states[0].keys():
        values = [st.get(name) for _, st, _, _ in per_param]
        for (key, _, _, _), value in zip(per_param, values):
            if not isinstance(value, np.ndarray):
                raise TypeError(f"state_dict: {name!r} of parameter {key!r}: expected an array")
        arr = np.empty(n, values[0].dtype)  # (the inner optimizer's load converts and checks it)
        pos = 0
        for (_, _, lo, hi), value in zip(per_param, values):
            arr[pos : pos + hi - lo] = value.reshape(-1)[lo:hi]
            pos += hi - lo
        out[name] = arr
    return out
