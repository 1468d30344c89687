"""Muon (torch.optim.Muon 2.13, torch/optim/_muon.py) over NumPy arrays."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _checks, _core, interop, reference
from ._axpy import Axpy
from ._grads import align_grads
from ._newton_schulz import NS_DTYPES, orthogonalize
from ._params import as_groups, refuse_overlap, split_params
from ._types import GradsLike, Hyper, ParamsLike, at_step

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
_ADJUST_LR = (None, "original", "match_rms_adamw")
_SCHEDULABLE = ("lr", "weight_decay", "momentum")  # may be functions of the step count


def adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """torch's _adjust_lr: "original" (None) scales by sqrt(max(1, A/B)), "match_rms_adamw" by
    0.2*sqrt(max(A, B)), for a parameter of shape (A, B)."""
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, A / B))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(A, B))
    else:
        ratio = 1.0
    return lr * ratio


def _resolved(group: Mapping[str, Any], count: int) -> dict[str, Any]:
    """The group with lr, weight_decay and momentum at step count `count`."""
    return {**group, **{k: at_step(group[k], count) for k in _SCHEDULABLE}}


def _check_group(group: Mapping[str, Any], where: str = "") -> None:
    """A group's values (callables already resolved: `_resolved`)."""
    for name in ("lr", "weight_decay", "momentum", "eps"):
        _checks.nonnegative(group[name], name + where)
    _checks.flag(group["nesterov"], "nesterov" + where)
    steps = group["ns_steps"]
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"ns_steps{where}: expected an int, got {type(steps).__name__}")
    if not 0 <= int(steps) < 100:
        raise ValueError(f"ns_steps{where}: must be in [0, 100) (torch refuses 100 and more), got {steps}")
    coeffs = group["ns_coefficients"]
    if not isinstance(coeffs, (tuple, list)) or len(coeffs) != 3:
        raise ValueError(f"ns_coefficients{where}: expected three numbers (a, b, c), got {coeffs!r:.80}")
    for c in coeffs:
        _checks.real(c, f"ns_coefficients{where}")
    fn = group["adjust_lr_fn"]
    if fn is not None and not isinstance(fn, str):
        raise TypeError(f"adjust_lr_fn{where}: expected None, 'original' or 'match_rms_adamw', got {type(fn).__name__}")
    if fn not in _ADJUST_LR:
        raise ValueError(f"adjust_lr_fn{where}: expected None, 'original' or 'match_rms_adamw', got {fn!r:.80}")
    _checks.choice(group["ns_dtype"], "ns_dtype" + where, NS_DTYPES)


def _final_alpha(alpha: float, dtype: np.dtype) -> float:
    """The alpha of torch's ``p.add_(O, alpha=alpha)``: in the parameter's dtype when O has it
    (a bfloat16, float32 or float64 parameter), float32 for a float16 parameter, whose bfloat16
    O makes torch's add run in float32 (measured against torch 2.13)."""
    return float(np.float32(alpha)) if dtype == np.float16 else float(dtype.type(alpha))


class Muon:
    """Muon, computing what ``torch.optim.Muon`` (2.13) computes, for 2-D parameters::

        buf = lerp(buf, g, 1 - momentum)                   # an EMA (torch's code, not its docstring)
        u   = lerp(g, buf, momentum) if nesterov else buf
        O   = NewtonSchulz(u)                               # ns_steps quintic iterations, bfloat16
        p   = p * (1 - lr*weight_decay) - adjusted_lr * O

    ``adjust_lr_fn``: None or "original" scales lr by sqrt(max(1, A/B)), "match_rms_adamw" by
    0.2*sqrt(max(A, B)), for a parameter of shape (A, B). Defaults are torch's: lr=1e-3,
    weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.7750, 2.0315),
    eps=1e-7, ns_steps=5. ``lr``, ``weight_decay`` and ``momentum`` may be functions of the step
    count (``step_count``, the steps taken), evaluated at each step. Optimise biases, embeddings and other non-2-D parameters with another
    optimizer (AdamW), as torch advises; a non-2-D parameter is a ValueError.

    ``ns_dtype="bfloat16"`` (the default) orthogonalizes as torch does, rounding every result to
    bfloat16; ``"float32"`` keeps float32 throughout (more accurate, not torch's numbers). The
    matrix products are NumPy's BLAS; the element-wise parts (the two lerps, the final update)
    are native fused passes over all parameters, as torch's kernels fuse them (docs/muon.md).
    bfloat16 and float16 parameters compute what torch computes on such tensors (each op in
    float32, rounded to the parameter's dtype; the momentum buffer in that dtype).

    ``step(grads)`` takes gradients in the params' structure (None skips a parameter: no state,
    no decay). A step that raises changes nothing. ``state_dict()``, ``pickle`` and
    ``deepcopy`` resume bit for bit.
    """

    def __init__(
        self,
        params: ParamsLike | None,
        lr: Hyper = 1e-3,
        weight_decay: Hyper = 0.1,
        momentum: Hyper = 0.95,
        nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
        eps: float = 1e-7,
        ns_steps: int = 5,
        adjust_lr_fn: str | None = None,
        *,
        ns_dtype: str = "bfloat16",
        backend: str = "native",
    ) -> None:
        _checks.choice(backend, "backend", ("native", "numpy"))
        self.backend = backend
        self.defaults: dict[str, Any] = dict(
            lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
            ns_coefficients=tuple(ns_coefficients) if isinstance(ns_coefficients, list) else ns_coefficients,
            eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn, ns_dtype=ns_dtype,
        )
        _check_group(_resolved(self.defaults, 0))
        self.step_count = 0  # steps taken: callables are evaluated at it
        self.param_groups: list[dict[str, Any]] = []
        self._keys: list[int | str] = []
        self._state: dict[int | str, dict[str, Any]] = {}
        if params is None:  # groups to come through add_param_group (fusedopt.torch builds it so)
            return
        for group in as_groups(params):
            self.add_param_group(group)
        if not self._keys:
            raise ValueError("params: the optimizer got an empty parameter list")

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: {'params': list or dict of 2-D arrays, **hyperparameters}."""
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError("param_group: expected a dict with a 'params' entry")
        group = dict(param_group)
        arrays, names = split_params(group["params"])
        if self.param_groups and (names is None) != (self.param_groups[0].get("param_names") is None):
            raise ValueError("params: all param groups must be given by name, or none")
        known = {id(p) for p in self.params}
        for i, p in enumerate(arrays):
            label = names[i] if names else i
            if p.ndim != 2:
                raise ValueError(f"params[{label!r}]: Muon only supports 2D parameters, got shape {p.shape}")
            if id(p) in known:
                raise ValueError(f"params[{label!r}]: this array is listed twice")
            known.add(id(p))
        refuse_overlap([(arrays, names)], self.params)
        if names and set(names) & set(k for k in self._keys if isinstance(k, str)):
            raise ValueError("params: a name is already used by another param group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        _check_group(_resolved(group, self.step_count), f" (param group {len(self.param_groups)})")
        group["params"] = arrays
        if names:
            group["param_names"] = names
        offset = len(self._keys)
        self.param_groups.append(group)
        self._keys += list(names) if names else list(range(offset, offset + len(arrays)))

    @property
    def params(self) -> list[np.ndarray]:
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def state(self) -> dict[int | str, dict[str, Any]]:
        """Per-parameter state, keyed like state_dict (live): {'momentum_buffer': array}."""
        return self._state

    # ---- the step ---------------------------------------------------------------------------

    def _scratch(self, params: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], Axpy]:
        """Per-parameter work arrays (the new buffer, the update) and the native axpy over the
        params, kept while the params are the same arrays."""
        ids = [id(p) for p in params]
        kept = self.__dict__.get("_work")
        if kept is None or kept[0] != ids:
            bufs = [np.empty_like(p, order="C") for p in params]
            upds = [np.empty_like(p, order="C") for p in params]
            kept = (ids, bufs, upds, Axpy(params, self.backend, separate=True))
            self._work = kept
        return kept[1], kept[2], kept[3]

    def _lerp(self, a: list[np.ndarray], b: list[np.ndarray], weights: list[float]) -> None:
        """a = torch.lerp(a, b, w), pair by pair, in one pass (a 16-bit `a`: float32 arithmetic,
        rounded once, as torch's lerp on bfloat16 and float16 tensors)."""
        if not a:
            return
        if self.backend == "native":
            _core.blend_(a, b, weights, "lerp", names=("momentum_buffer", "grads"))
        else:
            reference.blend(a, b, weights, "lerp")

    def step(self, grads: GradsLike) -> None:
        """One Muon step for every parameter with a gradient."""
        resolved = [_resolved(group, self.step_count) for group in self.param_groups]
        for gi, group in enumerate(resolved):
            _check_group(group, f" (param group {gi})")
        params = self.params
        names = self.param_groups[0].get("param_names") and [n for g in self.param_groups for n in g["param_names"]]
        # (the work arrays are C-ordered: a gradient in another layout is read through a C copy)
        items = [None if g is None else np.ascontiguousarray(g) for g in align_grads(grads, params, names)]
        hypers = [r for r, g in zip(resolved, self.param_groups) for _ in g["params"]]
        olds: list[np.ndarray | None] = []
        for key, p, g in zip(self._keys, params, items):
            buf = self._state.get(key, {}).get("momentum_buffer") if g is not None else None
            if buf is not None and (not isinstance(buf, np.ndarray) or buf.shape != p.shape or buf.dtype != p.dtype):
                raise ValueError(f"state: 'momentum_buffer' of parameter {key!r} must be an array of the "
                                 f"parameter's shape {p.shape} and dtype {p.dtype}")
            olds.append(buf)
        bufs, upds, axpy_param = self._scratch(params)
        live = [i for i, g in enumerate(items) if g is not None]

        # buf.lerp_(g, 1 - momentum), into the work arrays (the state is written last)
        for i in live:
            old = olds[i]
            np.copyto(bufs[i], 0 if old is None else old)
        self._lerp([bufs[i] for i in live], [items[i] for i in live],  # type: ignore[misc]
                   [1 - float(hypers[i]["momentum"]) for i in live])
        # nesterov: u = g.lerp(buf, momentum)
        nesterov = [i for i in live if hypers[i]["nesterov"]]
        for i in nesterov:
            np.copyto(upds[i], items[i])  # type: ignore[arg-type]
        self._lerp([upds[i] for i in nesterov], [bufs[i] for i in nesterov],
                   [float(hypers[i]["momentum"]) for i in nesterov])
        ortho: list[np.ndarray | None] = [None] * len(params)
        alphas: list[float] = [0.0] * len(params)
        for i in live:
            p, h = params[i], hypers[i]
            u = upds[i] if h["nesterov"] else bufs[i]
            o = orthogonalize(u, tuple(h["ns_coefficients"]), int(h["ns_steps"]), float(h["eps"]), h["ns_dtype"])
            ortho[i] = o.astype(p.dtype, copy=False)  # (bfloat16 values: exact, but a float16's below 2^-14)
            alphas[i] = _final_alpha(-adjusted_lr(float(h["lr"]), h["adjust_lr_fn"], p.shape), p.dtype)

        # commit: the buffers, then p.mul_(1 - lr*wd) and p.add_(O, alpha=-adjusted_lr)
        for i in live:
            key, p, h, old = self._keys[i], params[i], hypers[i], olds[i]
            if old is None:
                self._state.setdefault(key, {})["momentum_buffer"] = bufs[i].copy()
            else:
                np.copyto(old, bufs[i])
            decay = 1 - float(h["lr"]) * float(h["weight_decay"])
            if p.itemsize == 2:  # torch: the factor in float32, the product rounded once
                p[...] = p.astype(np.float32) * np.float32(decay)
            else:
                np.multiply(p, decay, out=p)
        axpy_param(alphas, ortho)
        self.step_count += 1

    # ---- state_dict and copies ------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Copies: {'state': {key: {'momentum_buffer': array}}, 'param_groups': [...], 'step_count': n}
        (torch's layout, plus the count callables are evaluated at)."""
        groups, offset = [], 0
        for g in self.param_groups:
            entry = {k: (list(v) if k == "param_names" else v) for k, v in g.items() if k != "params"}
            entry["params"] = self._keys[offset : offset + len(g["params"])]
            offset += len(g["params"])
            groups.append(entry)
        return {"state": copy.deepcopy(self._state), "param_groups": groups, "step_count": self.step_count}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from state_dict(); all or nothing (TypeError or ValueError before any change).
        A torch.optim.Muon state_dict is converted as ``interop.from_torch_state_dict`` does."""
        if interop.is_torch_state_dict(state_dict):
            interop.from_torch_state_dict(self, state_dict)
            return
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        if "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError("state_dict: expected 'state' and 'param_groups' entries")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, list) or len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict: expected a list of {len(self.param_groups)} param groups")
        if not isinstance(saved_state, Mapping):
            raise TypeError(f"state_dict: 'state' must be a dict, got {type(saved_state).__name__}")
        step_count = state_dict.get("step_count", 0)  # torch's has none
        if isinstance(step_count, (bool, np.bool_)) or not isinstance(step_count, numbers.Integral):
            raise TypeError(f"state_dict: 'step_count' must be an int, got {type(step_count).__name__}")
        if step_count < 0:
            raise ValueError(f"state_dict: 'step_count' must be >= 0, got {step_count}")
        key_map: dict[Any, tuple[int | str, np.ndarray]] = {}
        merged_groups, offset = [], 0
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or not isinstance(saved.get("params"), list):
                raise TypeError(f"state_dict: param group {gi} must be a dict with a 'params' list")
            n = len(group["params"])
            if len(saved["params"]) != n:
                raise ValueError(f"state_dict: param group {gi} has {len(saved['params'])} params, the optimizer's has {n}")
            merged = {k: v for k, v in saved.items() if k not in ("params", "param_names")}
            for k in self.defaults:
                if k not in merged:
                    raise ValueError(f"state_dict: param group {gi} lacks {k!r}")
            _check_group(_resolved(merged, int(step_count)), f" (state_dict param group {gi})")
            for j, sk in enumerate(saved["params"]):
                key_map[sk] = (self._keys[offset + j], group["params"][j])
            merged_groups.append(merged)
            offset += n
        new_state: dict[int | str, dict[str, Any]] = {}
        for sk, st in saved_state.items():
            if sk not in key_map:
                raise ValueError(f"state_dict: state for unknown parameter {sk!r}")
            key, p = key_map[sk]
            if not isinstance(st, Mapping) or "momentum_buffer" not in st:
                raise ValueError(f"state_dict: state of parameter {key!r} lacks 'momentum_buffer'")
            arr = np.asarray(st["momentum_buffer"])
            if arr.dtype.kind not in "fiu" and arr.dtype.name != "bfloat16":
                raise TypeError(f"state_dict: 'momentum_buffer' of parameter {key!r} has dtype {arr.dtype}")
            if arr.shape != p.shape:
                raise ValueError(f"state_dict: 'momentum_buffer' of parameter {key!r} has shape {arr.shape}, the parameter {p.shape}")
            new_state[key] = {**st, "momentum_buffer": np.array(arr, dtype=p.dtype, order="C", copy=True)}
        for group, merged in zip(self.param_groups, merged_groups):
            group.update(merged)
        self._state = new_state
        self.step_count = int(step_count)

    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d.pop("_work", None)  # work arrays and native axpys, rebuilt on demand
        return d

    def __repr__(self) -> str:
        lines = ["Muon ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {g[k]}" for k in sorted(g) if k not in ("params", "param_names")]
        return "\n".join(lines + [")"])
