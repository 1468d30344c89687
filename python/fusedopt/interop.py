"""Moving a run between torch.optim and fusedopt: state_dict conversion.

torch keys optimizer state by parameter *position* over all param groups and
keeps ``step`` (and NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``) as
float32 0-d tensors; fusedopt keys it by position or by parameter name, keeps
``step`` as an exact Python int, the other scalars as Python floats, and
array state as NumPy arrays of the parameter's dtype.  The state
names are the same (``exp_avg``, ``momentum_buffer``, ...).

    tsd = torch_opt.state_dict()
    fusedopt.interop.from_torch_state_dict(fo_opt, tsd)     # continue in fusedopt
    torch_opt.load_state_dict(fusedopt.interop.to_torch_state_dict(fo_opt))  # ... or in torch

Parameters themselves are not part of either state_dict: copy their values
across as you would for a model checkpoint.  fusedopt's in-optimizer clipping
(``max_grad_norm``, ``clip_value``) is not a torch.optim option: after moving
to torch, clip with ``torch.nn.utils.clip_grad_norm_`` yourself.

torch is imported lazily, and only by :func:`to_torch_state_dict`; without
torch it returns NumPy values (a float32 0-d array for ``step``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["TORCH_GROUP_DEFAULTS", "from_torch_state_dict", "is_torch_state_dict", "to_torch_state_dict"]

# torch 2.13's param-group keys and defaults per optimizer, in torch's order
# (what ``torch.optim.<Name>(params).state_dict()["param_groups"][0]`` holds).
TORCH_GROUP_DEFAULTS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 1e-3, "momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False,
            "foreach": None, "differentiable": False, "fused": None},
    "Adagrad": {"lr": 1e-2, "lr_decay": 0, "eps": 1e-10, "weight_decay": 0, "initial_accumulator_value": 0,
                "foreach": None, "maximize": False, "differentiable": False, "fused": None},
    "RMSprop": {"lr": 1e-2, "momentum": 0, "alpha": 0.99, "eps": 1e-8, "centered": False, "weight_decay": 0,
                "capturable": False, "foreach": None, "maximize": False, "differentiable": False},
    "Adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "amsgrad": False, "maximize": False,
             "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "decoupled_weight_decay": False},
    "AdamW": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False,
              "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
              "decoupled_weight_decay": True},
    "Adamax": {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "foreach": None,
               "maximize": False, "differentiable": False, "capturable": False},
    "NAdam": {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "momentum_decay": 4e-3,
              "decoupled_weight_decay": False, "maximize": False, "foreach": None, "capturable": False,
              "differentiable": False},
    "RAdam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0, "maximize": False,
              "foreach": None, "capturable": False, "decoupled_weight_decay": False, "differentiable": False},
    "Adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0, "maximize": False, "capturable": False,
                 "foreach": None, "differentiable": False},
    "Rprop": {"lr": 1e-2, "etas": (0.5, 1.2), "step_sizes": (1e-6, 50), "foreach": None, "maximize": False,
              "differentiable": False, "capturable": False},
    "ASGD": {"lr": 1e-2, "lambd": 1e-4, "alpha": 0.75, "t0": 1e6, "weight_decay": 0, "foreach": None,
             "maximize": False, "differentiable": False, "capturable": False},
    "Muon": {"lr": 1e-3, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True,
             "ns_coefficients": (3.4445, -4.775, 2.0315), "eps": 1e-7, "ns_steps": 5, "adjust_lr_fn": None},
}
TORCH_GROUP_DEFAULTS["Adafactor"] = {"lr": 1e-2, "beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0,
                                     "weight_decay": 0.0, "foreach": None, "maximize": False}

# Implementation switches of torch.optim: they change how torch computes, not what.
_TORCH_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})
# Keys torch's lr schedulers add to param groups; carried both ways.
_SCHEDULER_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")
# State torch keeps as 0-d float32 tensors (whatever the parameter dtype).
_FLOAT32_SCALARS = frozenset({"step", "mu_product", "eta", "mu"})


def _group_defaults(optimizer: Any) -> dict[str, Any]:
    """The param-group keys (and defaults) of the optimizer's torch.optim counterpart; a rule
    torch.optim lacks (Lion) keeps its own hyperparameters, so fusedopt.torch can save it in
    torch's layout too."""
    for cls in type(optimizer).__mro__:
        if cls.__name__ in TORCH_GROUP_DEFAULTS:
            return TORCH_GROUP_DEFAULTS[cls.__name__]
    return dict(optimizer.defaults)


def _float_counters(optimizer: Any) -> frozenset[str]:
    """The float counters fusedopt keeps in float64 (Schedule-Free's ``lr_max``, ``weight_sum``):
    0-d float64 tensors in torch's layout, Python floats here."""
    from . import _core

    rule = getattr(optimizer, "rule", None)
    if not isinstance(rule, str) or rule not in _core.rule_names():
        return frozenset()
    return frozenset(_core.rule_info(rule)["extra_counters"]) - _FLOAT32_SCALARS


def _slot_shape(optimizer: Any, p: np.ndarray, name: str) -> tuple[int, ...]:
    """The shape a state array `name` of parameter `p` has: the parameter's, or the rule's slot
    shape (Adafactor's row_var and col_var: rule.hpp, SlotShape)."""
    engine = getattr(optimizer, "_engine", None)
    if engine is None:  # optimizers that step in Python (LBFGS, Muon): state like the parameter
        return tuple(p.shape)
    group = next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))
    slots = engine.slot_shapes(group, optimizer.step_count, "", p)  # {name: (shape, dtype)}
    return tuple(slots[name][0]) if name in slots else tuple(p.shape)


def _to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device, with or without grad) or array-like as a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # (torch's .numpy() refuses bfloat16; ml_dtypes has it)
            import ml_dtypes

            return np.asarray(t.float().numpy().astype(ml_dtypes.bfloat16))
        out: np.ndarray = t.numpy()
        return out
    return np.asarray(value)


def _plain(value: Any) -> Any:
    """A hyperparameter from torch as a Python value: 0-d/1-element tensors become floats,
    tuples/lists of them tuples (torch keeps betas as a tuple)."""
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "detach") and hasattr(value, "numel"):
        return float(value.detach().cpu().reshape(-1)[0])
    if isinstance(value, np.ndarray):
        return float(value.reshape(-1)[0])
    return value


def _flat_keys(groups: list[Mapping[str, Any]]) -> list[Any]:
    return [k for g in groups for k in g["params"]]


def is_torch_state_dict(state_dict: Any) -> bool:
    """Whether `state_dict` is in torch.optim's layout: a param group holds one of torch's
    implementation flags (foreach, fused, ...), or the state holds torch tensors. (fusedopt's own
    never does either.)"""
    if not isinstance(state_dict, Mapping):
        return False
    groups, state = state_dict.get("param_groups"), state_dict.get("state")
    if isinstance(groups, list) and any(isinstance(g, Mapping) and not _TORCH_FLAGS.isdisjoint(g) for g in groups):
        return True
    return isinstance(state, Mapping) and any(
        isinstance(st, Mapping) and any(type(v).__module__.startswith("torch") for v in st.values())
        for st in state.values())


def from_torch_state_dict(optimizer: Any, torch_state_dict: Mapping[str, Any]) -> None:
    """Load a ``torch.optim`` state_dict into a fusedopt optimizer of the same kind.

    Parameters are matched by position over all param groups (as torch's own
    load_state_dict does); the group structure must be the same.  Tensors
    become NumPy arrays (the optimizer casts them to its state's dtype), the float32 ``step`` tensor
    an exact int, ``mu_product`` a float (float32-rounded, as torch keeps it).
    Each group's hyperparameters (and the keys lr schedulers add, such as
    ``initial_lr``) are taken from the torch groups; torch's implementation
    flags (foreach, fused, capturable, differentiable) are dropped and
    fusedopt-only options (backend, clipping) are kept.  Values may also be
    NumPy arrays instead of tensors, so no torch is needed.
    """
    if not isinstance(torch_state_dict, Mapping) or "state" not in torch_state_dict or "param_groups" not in torch_state_dict:
        raise ValueError("torch_state_dict: expected a dict with 'state' and 'param_groups'")
    t_groups = list(torch_state_dict["param_groups"])
    ours = optimizer.state_dict()
    o_groups = ours["param_groups"]
    if len(t_groups) != len(o_groups):
        raise ValueError(f"torch_state_dict has {len(t_groups)} param groups, the optimizer has {len(o_groups)}")
    for gi, (tg, og) in enumerate(zip(t_groups, o_groups)):
        if len(tg["params"]) != len(og["params"]):
            raise ValueError(
                f"param group {gi}: torch_state_dict has {len(tg['params'])} parameters, the optimizer has {len(og['params'])}"
            )
    t_keys = _flat_keys(t_groups)
    o_keys = _flat_keys(o_groups)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    position = {tk: i for i, tk in enumerate(t_keys)}

    state: dict[Any, dict[str, Any]] = {}
    max_step = None
    for tk, t_st in torch_state_dict["state"].items():
        if tk not in position:
            raise ValueError(f"torch_state_dict: state for parameter {tk!r}, which no param group lists")
        i = position[tk]
        p = params[i]
        st: dict[str, Any] = {}
        for name, value in t_st.items():
            arr = _to_numpy(value)
            if name == "step":
                step = float(arr)
                if not (step >= 0 and step == int(step)):
                    raise ValueError(f"torch_state_dict: 'step' of parameter {tk!r} is {step!r}, not a whole number")
                st["step"] = int(step)
                max_step = st["step"] if max_step is None else max(max_step, st["step"])
            elif name in _FLOAT32_SCALARS:
                st[name] = float(np.float32(arr))
            elif name in _float_counters(optimizer):
                st[name] = float(arr)
            else:
                expected = _slot_shape(optimizer, p, name)
                if arr.shape != expected:
                    raise ValueError(
                        f"torch_state_dict: {name!r} of parameter {tk!r} has shape {tuple(arr.shape)}, "
                        f"the parameter has {p.shape}" + ("" if expected == p.shape else f" and keeps it as {expected}")
                    )
                st[name] = np.array(arr, order="C", copy=True)  # (load_state_dict casts to the slot's dtype)
        state[o_keys[i]] = st

    groups = []
    for tg, og in zip(t_groups, o_groups):
        g = dict(og)
        for k, v in tg.items():
            if k in ("params", "param_names") or k in _TORCH_FLAGS:
                continue
            if k in og or k in _SCHEDULER_KEYS:
                g[k] = _plain(v)
        groups.append(g)

    new_sd = dict(ours)
    new_sd["state"] = state
    new_sd["param_groups"] = groups
    if "step_count" in new_sd and max_step is not None:
        new_sd["step_count"] = max_step
    # compressed state (state_dtype) is stored from torch's float values; Muon has none (no keyword)
    if getattr(optimizer, "state_dtype", None) is not None:
        optimizer.load_state_dict(new_sd, convert_state=True)
    else:
        optimizer.load_state_dict(new_sd)


def _resolve(value: Any, count: int) -> Any:
    if callable(value):
        return value(count)
    if isinstance(value, (tuple, list)):
        return tuple(v(count) if callable(v) else v for v in value)
    return value


def _uncompressed(optimizer: Any, st: Mapping[str, Any], p: np.ndarray, key: Any) -> Mapping[str, Any]:
    """A parameter's saved state with compressed slots (state_dtype) as the float32 values
    they mean, in the parameter's shape (docs/compressed_state.md)."""
    if getattr(optimizer, "state_dtype", None) is None:
        return st
    from . import _core, compressed_state

    info = _core.rule_info(optimizer.rule)
    out = dict(st)
    for name, codec in zip(info["slots"], info["slot_codecs"]):
        if name in st:
            out[name] = compressed_state.read_saved(name, st, p, f"state {name!r} of parameter {key!r}",
                                                    codec != "nonnegative")
            out.pop(f"{name}_absmax", None)
    return out


def to_torch_state_dict(optimizer: Any) -> dict[str, Any]:
    """The optimizer's state as a dict ``torch.optim.<Same>.load_state_dict`` accepts.

    State is keyed by position over all groups; arrays become tensors (NumPy
    copies without torch; compressed state as the float32 values it stores), ``step``, ``mu_product``, ``eta`` and ``mu`` float32 0-d tensors.
    Param groups carry torch's keys for that optimizer (for Lion, which
    torch.optim lacks, its own hyperparameters), with torch's defaults for its
    implementation flags; callable hyperparameters are evaluated at
    the optimizer's current step count; fusedopt-only options are left out.
    """
    torch: Any
    try:
        import torch
    except ImportError:
        torch = None

    def tensor(value: Any, float32: bool = False) -> Any:
        if float32:
            arr = np.array(value, dtype=np.float32)
        else:
            arr = np.array(value, copy=True)
        return torch.from_numpy(arr) if torch is not None else arr

    sd = optimizer.state_dict()
    keys = _flat_keys(sd["param_groups"])
    position = {k: i for i, k in enumerate(keys)}
    count = int(getattr(optimizer, "step_count", 0))

    state: dict[int, dict[str, Any]] = {}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for key, st in sd["state"].items():
        out: dict[str, Any] = {}
        st = _uncompressed(optimizer, st, params[position[key]], key)
        for sname, value in st.items():
            if isinstance(value, np.ndarray):
                out[sname] = tensor(value)
            elif sname in _FLOAT32_SCALARS:
                out[sname] = tensor(float(value), float32=True)
            elif isinstance(value, (int, float, np.number)):  # a float64 counter (Schedule-Free's)
                out[sname] = tensor(np.float64(value))
            else:
                out[sname] = copy.deepcopy(value)
        state[position[key]] = out

    defaults = _group_defaults(optimizer)
    groups = []
    for g in sd["param_groups"]:
        tg: dict[str, Any] = {}
        for k, default in defaults.items():
            tg[k] = _resolve(g[k], count) if k in g else default
        if isinstance(tg.get("betas"), list):
            tg["betas"] = tuple(tg["betas"])
        for k in _SCHEDULER_KEYS:
            if k in g:
                tg[k] = _resolve(g[k], count)
        tg["params"] = [position[k] for k in g["params"]]
        if "param_names" in g:
            tg["param_names"] = list(g["param_names"])
        groups.append(tg)
    return {"state": state, "param_groups": groups}
