"""The optimizer base class: param groups, state, step count, state_dict, and the step itself.

A step resolves each group's hyperparameters (a callable is evaluated at the step count),
derives the kernel's scalars in float64 once per group (and per step count, since parameters
that skipped steps have their own), then hands the whole step to one native ``Batch``: every
array is checked and every overlap rejected before anything is written. New state arrays are
created on the side and kept only if the step succeeds, so a step that raises changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import _core, reference
from .._grad_transform import GradTransform
from ._hyper import check_nonnegative
from ._params import ParamsLike, align_grads, as_groups, split_params

Key = int | str
State = dict[str, Any]


@dataclass(slots=True)
class _Entry:
    """One native call's worth of a step: parameters of one group sharing the step's scalars."""

    group: int
    hp: dict[str, Any]
    scalars: dict[str, Any]
    keys: list[Any]
    params: list[np.ndarray]
    grads: list[Any]
    states: list[dict[str, Any]]
    state_lists: list[list[np.ndarray] | None]  # per slot of the rule, None where unused


@dataclass(slots=True)
class _SteadyGroup:
    params_ref: list[np.ndarray]  # the group's own params list, to notice a replaced one
    offset: int                   # of the group's first parameter in the flat order
    slot_names: tuple[str | None, ...]
    leader: dict[str, Any]        # the group's shared counters (step, mu_product), advanced per step
    template: _Entry


class NonFiniteGradientError(FloatingPointError):
    """A step with ``nonfinite="raise"`` saw a NaN or infinite gradient; nothing was written."""


_BACKENDS = ("native", "numpy")
_CHECKED: set[Any] = set()  # (optimizer class, resolved hyperparameters) that passed the checks
_NONFINITE = ("propagate", "skip", "raise")
_CLIP_SCOPES = ("group", "global")


def _whole_step(value: Any, key: Any) -> int:
    """A saved step count as an exact int (ints pass as they are: no rounding above 2**53)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        step = int(value)
    else:
        f = float(np.asarray(value))  # also a float, a 0-d array or a torch-style scalar
        if not (math.isfinite(f) and f == int(f)):
            raise ValueError(f"state_dict: 'step' of parameter {key!r} must be a whole number >= 0, got {value!r}")
        step = int(f)
    if step < 0:
        raise ValueError(f"state_dict: 'step' of parameter {key!r} must be a whole number >= 0, got {value!r}")
    return step


def _resolve_tuple(value: tuple[Any, ...], count: int) -> tuple[Any, ...]:
    return tuple(v(count) if callable(v) else v for v in value)


class Optimizer:
    """Base class. Subclasses set ``rule`` (the native ``Batch.add_<rule>`` and
    ``reference.<rule>`` name) and implement the hooks below."""

    rule: ClassVar[str]
    has_step: ClassVar[bool] = True  # keeps a per-parameter 'step' count, as torch does
    _advance_only_scalars: ClassVar[frozenset[str]] = frozenset()  # for _advance, not the kernel

    def __init__(
        self,
        params: ParamsLike | None,
        defaults: Mapping[str, Any],
        *,
        backend: str = "native",
        max_grad_norm: float | None = None,
        clip_value: float | None = None,
        clip_scope: str = "group",
        nonfinite: str = "propagate",
    ) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        if clip_scope not in _CLIP_SCOPES:
            raise ValueError(f"clip_scope must be one of {_CLIP_SCOPES}, got {clip_scope!r}")
        if max_grad_norm is not None:
            max_grad_norm = check_nonnegative(max_grad_norm, "max_grad_norm", "")
        if clip_value is not None:
            clip_value = check_nonnegative(clip_value, "clip_value", "")
        if max_grad_norm is not None and clip_value is not None:
            raise ValueError("max_grad_norm and clip_value: choose one way to clip")
        self.defaults: dict[str, Any] = dict(defaults)
        self.backend = backend
        self.max_grad_norm = max_grad_norm
        self.clip_value = clip_value
        self.clip_scope = clip_scope
        self.nonfinite = nonfinite
        self.param_groups: list[dict[str, Any]] = []
        self._state: dict[Key, State] = {}
        self._steady: list[_SteadyGroup] | None = None
        self._steady_plan: Any = None  # native plan (frozen _core.Batch) for the steady lists
        self.step_count = 0          # successful steps; a callable hyperparameter sees this
        self.skipped_steps = 0       # steps skipped for non-finite gradients
        self.last_grad_norm: float | None = None
        self.last_group_grad_norms: list[float] = []
        self._keys: list[Key] = []
        self._names_given: bool | None = None
        self._check_hyperparameters(_resolved(self.defaults, 0), "")
        if params is not None:
            groups = as_groups(params)
            if not groups or not any(True for _ in groups):
                raise ValueError("params: the optimizer got an empty parameter list")
            for group in groups:
                self.add_param_group(group)
            if not self._keys:
                raise ValueError("params: the optimizer got an empty parameter list")

    # ---- hooks for subclasses -------------------------------------------------------------

    def _check_hyperparameters(self, hp: Mapping[str, Any], where: str) -> None:
        """Raise ValueError/TypeError for an invalid resolved hyperparameter set."""

    def _state_slots(self, hp: Mapping[str, Any]) -> list[str | None]:
        """Names of the state arrays the rule takes after (p, g), None for an unused slot."""
        raise NotImplementedError

    def _init_state(self, p: np.ndarray, hp: Mapping[str, Any]) -> State:
        """Fresh state for a parameter's first step: zeros for every array slot."""
        st: State = {"step": 0} if self.has_step else {}
        for name in self._state_slots(hp):
            if name is not None:
                st[name] = np.zeros_like(p)
        return st

    def _bucket(self, st: State, new: bool) -> Any:
        """Parameters of a group that share a bucket share the step's scalars
        (`new`: the state was just created for this step)."""
        return st.get("step", 0)

    def _scalars(self, hp: Mapping[str, Any], st: State, new: bool) -> dict[str, Any]:
        """The kernel's per-step scalars, in float64, for parameters in `st`'s bucket."""
        raise NotImplementedError

    def _advance(self, st: State, scalars: Mapping[str, Any]) -> None:
        """Non-array state after a successful step."""
        if self.has_step:
            st["step"] += 1

    # ---- param groups ---------------------------------------------------------------------

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: {'params': list or dict of arrays, **hyperparameters}."""
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError("param_group: expected a dict with a 'params' entry")
        group = dict(param_group)
        params, names = split_params(group["params"])
        named = names is not None
        if self._names_given is not None and named != self._names_given:
            raise ValueError("params: all param groups must be given by name, or none")
        known = {id(p) for g in self.param_groups for p in g["params"]}
        seen: set[int] = set()
        for i, p in enumerate(params):
            label = names[i] if names else i
            if id(p) in known:
                raise ValueError(f"params[{label!r}]: this array is already in another param group")
            if id(p) in seen:
                raise ValueError(f"params[{label!r}]: the same array is listed twice")
            seen.add(id(p))
        if names:
            taken = {k for k in self._keys if isinstance(k, str)}
            for n in names:
                if n in taken:
                    raise ValueError(f"params: the name {n!r} is already used by another param group")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        where = f" (param group {len(self.param_groups)})"
        self._check_hyperparameters(_resolved(group, self.step_count), where)
        group["params"] = params
        if names:
            group["param_names"] = names
        self._drop_steady()
        self._names_given = named
        self.param_groups.append(group)
        self._rebuild_keys()
        self._on_group_added(group)

    def _on_group_added(self, group: dict[str, Any]) -> None:
        """Optimizers that create state eagerly (Adagrad) do it here."""

    def _rebuild_keys(self) -> None:
        keys: list[Key] = []
        for g in self.param_groups:
            if "param_names" in g:
                keys.extend(g["param_names"])
            else:
                keys.extend(range(len(keys), len(keys) + len(g["params"])))
        self._keys = keys

    @property
    def params(self) -> list[np.ndarray]:
        """Every parameter, in order over all groups."""
        return [p for g in self.param_groups for p in g["params"]]

    # ---- the step -------------------------------------------------------------------------

    def step(self, grads: Any) -> None:
        """Update every parameter in place from `grads` (same structure as the params; a None
        gradient skips its parameter: no state, no step count, no weight decay)."""
        flat_grads = align_grads(grads, self._keys, bool(self._names_given))
        entries = self._steady_entries(flat_grads) if self._steady is not None else None
        steady = entries is not None
        pending: dict[Key, State] = {}
        if entries is None:
            self._drop_steady()
            entries, pending = self._plan(flat_grads)
        if self.backend == "native":
            result = self._run_native(entries, self._steady_plan if steady else None)
        else:
            result = self._run_reference(entries)
        self.last_grad_norm = result["grad_norm"]
        self.last_group_grad_norms = list(result["group_norms"])
        if result["aborted"]:
            if self.nonfinite == "raise":
                raise NonFiniteGradientError(
                    f"non-finite gradient (norm {result['grad_norm']}); nothing was updated"
                )
            self.skipped_steps += 1
            return
        self.step_count += 1
        if steady:
            assert self._steady is not None
            for sg, e in zip(self._steady, entries):
                if sg.leader:
                    self._advance(sg.leader, e.scalars)
                    for st in e.states:  # a few dict updates: state stays current for holders
                        st.update(sg.leader)
            return
        self._state.update((k, st) for k, st in pending.items() if st)  # torch keeps no empty state
        for e in entries:
            for st in e.states:
                self._advance(st, e.scalars)
        hps = {e.group: e.hp for e in entries}
        self._steady = self._build_steady(hps)
        self._steady_plan = self._build_plan(self._steady, hps) if self._steady and self.backend == "native" else None

    def update(self, params: ParamsLike, grads: Any) -> ParamsLike:
        """Course-material style: ``opt.update(params, grads)`` on an optimizer built without
        params. The first call binds the params; later calls must pass the same arrays.
        Returns `params` (updated in place), so ``params = opt.update(params, grads)`` works too."""
        if not self.param_groups:
            self.add_param_group({"params": params})
        else:
            given, _ = split_params(params)
            mine = self.params
            if len(given) != len(mine) or any(a is not b for a, b in zip(given, mine)):
                raise ValueError("params: update() must be called with the same arrays every time")
        self.step(grads)
        return params

    def _check_cached(self, hp: dict[str, Any], gi: int) -> None:
        """_check_hyperparameters, skipped when this exact set of values already passed."""
        try:
            signature = (type(self), tuple((k, type(v), v) for k, v in hp.items()))
            if signature in _CHECKED:
                return
        except TypeError:  # an unhashable value: just check it
            signature = None
        self._check_hyperparameters(hp, f" (param group {gi})")
        if signature is not None:
            if len(_CHECKED) > 4096:
                _CHECKED.clear()
            _CHECKED.add(signature)

    def _plan(self, flat_grads: list[Any]) -> tuple[list[_Entry], dict[Key, State]]:
        """The general step: per group, the parameters with a gradient, bucketed by step
        count; state for first steps created on the side (`pending`)."""
        entries: list[_Entry] = []
        pending: dict[Key, State] = {}
        offset = 0
        keys = self._keys
        for gi, group in enumerate(self.param_groups):
            hp = _resolved(group, self.step_count)
            self._check_cached(hp, gi)
            slot_names = self._state_slots(hp)
            slots = [n for n in slot_names if n is not None]
            buckets: dict[Any, list[Any]] = {}
            for j, p in enumerate(group["params"]):
                g = flat_grads[offset + j]
                if g is None:
                    continue
                key = keys[offset + j]
                st = self._state.get(key)
                new = st is None
                if new:
                    st = pending[key] = self._init_state(p, hp)
                elif not all(n in st for n in slots):
                    # An option turned on mid-run (momentum, amsgrad, ...): its state starts
                    # fresh, on the side until the step succeeds.
                    fresh = self._init_state(p, hp)
                    st = pending[key] = {**{k: v for k, v in fresh.items() if k not in st}, **st}
                buckets.setdefault(self._bucket(st, new), []).append((key, p, g, st, new))
            offset += len(group["params"])
            for items in buckets.values():
                states = [it[3] for it in items]
                entries.append(
                    _Entry(
                        group=gi,
                        hp=hp,
                        scalars=self._scalars(hp, items[0][3], items[0][4]),
                        keys=[it[0] for it in items],
                        params=[it[1] for it in items],
                        grads=[it[2] for it in items],
                        states=states,
                        state_lists=_state_lists(states, slot_names),
                    )
                )
        return entries, pending

    # ---- the steady path: every parameter has state and its group's step count -------------
    # After a general step, when every parameter of every group has its state and all of a
    # group's parameters share the same non-array state (step, mu_product), the per-group lists
    # are kept, and (native backend) a frozen native plan over them. Later steps reuse them:
    # only gradients, hyperparameters and scalars are new; the shared counters advance once per
    # group (the "leader") and are copied into every parameter's state dict.

    def _build_steady(self, hps: dict[int, dict[str, Any]]) -> list[_SteadyGroup] | None:
        """The steady lists, from the hyperparameters of the step just taken (`hps`, by group;
        a group that took no part keeps the general path)."""
        steady: list[_SteadyGroup] = []
        offset = 0
        for gi, group in enumerate(self.param_groups):
            params = group["params"]
            n = len(params)
            hp = hps.get(gi)
            if hp is None:
                return None
            slot_names = self._state_slots(hp)
            slots = [x for x in slot_names if x is not None]
            keys = self._keys[offset : offset + n]
            if slots or self.has_step:
                states = [self._state.get(k) for k in keys]
                if any(st is None or not all(x in st for x in slots) for st in states):
                    return None
                leader = {k: v for k, v in states[0].items() if not isinstance(v, np.ndarray)} if states else {}
                for st in states:
                    for k, v in leader.items():
                        if st.get(k) != v:
                            return None
            else:  # nothing to keep (SGD without momentum)
                states, leader = [], {}
            steady.append(
                _SteadyGroup(
                    params_ref=params,
                    offset=offset,
                    slot_names=tuple(slot_names),
                    leader=dict(leader),
                    template=_Entry(
                        group=len(steady),
                        hp={},
                        scalars={},
                        keys=list(keys),
                        params=list(params),
                        grads=[],
                        states=states,
                        state_lists=_state_lists(states, slot_names),
                    ),
                )
            )
            offset += n
        return steady

    def _build_plan(self, steady: list[_SteadyGroup], hps: dict[int, dict[str, Any]]) -> Any:
        """A frozen native batch over the steady lists: parameters, state and their overlaps are
        checked once here; each later step passes only gradients and scalars. (The scalars given
        here, from the step just taken, only tell which state arrays the options use.)"""
        entries = []
        for sg in steady:
            t, hp = sg.template, hps[sg.template.group]
            scalars = self._scalars(hp, sg.leader, False)
            entries.append(_Entry(t.group, hp, scalars, t.keys, t.params, [], t.states, t.state_lists))
        plan = self._native_batch(entries, with_grads=False)
        plan.freeze()
        return plan

    def _steady_entries(self, flat_grads: list[Any]) -> list[_Entry] | None:
        """This step's entries from the steady lists, or None when it needs the general path
        (a None gradient, changed params lists, an option that changes the state arrays)."""
        assert self._steady is not None
        if len(self._steady) != len(self.param_groups):
            return None
        entries = []
        for sg, group in zip(self._steady, self.param_groups):
            t = sg.template
            params = group["params"]
            if params is not sg.params_ref or not _core.same_objects(params, t.params):
                return None
            grads = flat_grads[sg.offset : sg.offset + len(t.params)]
            if _core.first_none(grads) >= 0:
                return None
            hp = _resolved(group, self.step_count)
            self._check_cached(hp, t.group)
            if tuple(self._state_slots(hp)) != sg.slot_names:
                return None
            scalars = self._scalars(hp, sg.leader, False)
            entries.append(_Entry(t.group, hp, scalars, t.keys, t.params, grads, t.states, t.state_lists))
        return entries

    def _drop_steady(self) -> None:
        """Back to the general path (someone may replace state arrays, or groups changed)."""
        self._steady = None
        self._steady_plan = None

    @property
    def state(self) -> dict[Key, State]:
        """Per-parameter state (torch's names), keyed like state_dict. Live arrays: reading it
        sends the next step down the general path, which notices replaced arrays."""
        self._drop_steady()
        return self._state

    # ---- running a step ---------------------------------------------------------------------

    def _kernel_scalars(self, scalars: dict[str, Any]) -> dict[str, Any]:
        """The scalars the kernel takes: all but those listed in _advance_only_scalars."""
        if not self._advance_only_scalars:
            return scalars
        return {k: v for k, v in scalars.items() if k not in self._advance_only_scalars}

    def _native_batch(self, entries: list[_Entry], with_grads: bool = True) -> Any:
        batch = _core.Batch()
        per_group = self.clip_scope == "group"
        for e in entries:
            batch.add(
                self.rule,
                e.params,
                e.grads if with_grads else None,
                e.state_lists,
                scalars=self._kernel_scalars(e.scalars),
                labels=e.keys,
                group=e.group if per_group else 0,
                maximize=bool(e.hp.get("maximize", False)),
            )
        return batch

    def _run_options(self) -> dict[str, Any]:
        guard = self.nonfinite != "propagate"
        return {
            "max_norm": self.max_grad_norm,
            "per_group": self.clip_scope == "group",
            "clip_value": self.clip_value,
            "check_finite": guard,
            "abort_on_nonfinite": guard,
        }

    def _run_native(self, entries: list[_Entry], plan: Any = None) -> dict[str, Any]:
        if plan is not None:  # the steady path: params and state were checked when it was built
            result = plan.step(
                [e.grads for e in entries],
                [self._kernel_scalars(e.scalars) for e in entries],
                [bool(e.hp.get("maximize", False)) for e in entries],
                **self._run_options(),
            )
        else:
            result = self._native_batch(entries).run(**self._run_options())
        norms = result["group_norms"]
        if self.clip_scope == "group" and result["grad_norm"] is not None:
            # Groups after the last one with gradients had none: their norm is 0.
            result["group_norms"] = list(norms) + [0.0] * (len(self.param_groups) - len(norms))
        return result

    def _run_reference(self, entries: list[_Entry]) -> dict[str, Any]:
        """The same step in NumPy: same checks (the native Batch validates without running),
        same clipping and non-finite rules, reference math."""
        self._native_batch(entries).check()
        opts = self._run_options()
        result: dict[str, Any] = {"grad_norm": None, "group_norms": [], "nonfinite": False, "aborted": False}
        coef: dict[int, float] = {}
        if opts["max_norm"] is not None or opts["check_finite"]:
            scopes: dict[int, list[np.ndarray]] = {}
            for e in entries:
                scopes.setdefault(e.group if opts["per_group"] else 0, []).extend(e.grads)
            ngroups = len(self.param_groups) if opts["per_group"] else 1
            norms = [reference.total_norm(scopes.get(i, [])) for i in range(ngroups)]
            result["nonfinite"] = any(not math.isfinite(n) for n in norms)
            result["grad_norm"] = norms[0] if ngroups == 1 else math.sqrt(math.fsum(n * n for n in norms))
            if opts["per_group"]:
                result["group_norms"] = norms
            if result["nonfinite"] and opts["abort_on_nonfinite"]:
                result["aborted"] = True
                return result
            if opts["max_norm"] is not None:
                for i, n in enumerate(norms):
                    c = opts["max_norm"] / (n + 1e-6)
                    coef[i] = c if (c < 1.0 or c != c) else 1.0
        bound = opts["clip_value"]
        update = getattr(reference, self.rule)
        with np.errstate(all="ignore"):  # NaN/Inf propagate silently, as in torch and the kernels
            self._reference_updates(entries, update, coef, bound, opts["per_group"])
        return result

    def _reference_updates(
        self, entries: list[_Entry], update: Callable[..., None], coef: dict[int, float], bound: Any, per_group: bool
    ) -> None:
        for e in entries:
            sign = -1.0 if e.hp.get("maximize", False) else 1.0
            scale = sign * coef.get(e.group if per_group else 0, 1.0)
            transform = GradTransform(scale, -bound, bound) if bound is not None else GradTransform(scale)
            kernel_scalars = self._kernel_scalars(e.scalars)
            for i, (p, g) in enumerate(zip(e.params, e.grads)):
                arrays = [None if lst is None else lst[i] for lst in e.state_lists]
                update(p, g, *arrays, transform=transform, **kernel_scalars)

    # ---- state_dict -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Copies (not live views): {'state': {key: {...}}, 'param_groups': [...], counters}.
        Keys are parameter names where names were given, else positions over all groups."""
        groups = []
        offset = 0
        for g in self.param_groups:
            n = len(g["params"])
            entry = {k: (list(v) if k == "param_names" else v) for k, v in g.items() if k != "params"}
            entry["params"] = list(self._keys[offset : offset + n])
            groups.append(entry)
            offset += n
        state = {
            k: {name: (v.copy() if isinstance(v, np.ndarray) else v) for name, v in st.items()}
            for k, st in self.state.items()
        }
        return {
            "state": state,
            "param_groups": groups,
            "step_count": self.step_count,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from state_dict(); checks everything before changing anything."""
        saved_groups = state_dict.get("param_groups")
        saved_state = state_dict.get("state")
        if not isinstance(saved_groups, list) or not isinstance(saved_state, Mapping):
            raise ValueError("state_dict: expected 'state' and 'param_groups' entries")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict: has {len(saved_groups)} param groups, the optimizer has {len(self.param_groups)}"
            )
        key_map: dict[Any, tuple[Key, np.ndarray, dict[str, Any]]] = {}
        new_groups = []
        offset = 0
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            n = len(group["params"])
            saved_keys = saved.get("params", [])
            if len(saved_keys) != n:
                raise ValueError(f"state_dict: param group {gi} has {len(saved_keys)} params, the optimizer's has {n}")
            for j, sk in enumerate(saved_keys):
                key_map[sk] = (self._keys[offset + j], group["params"][j], saved)
            merged = {k: v for k, v in saved.items() if k != "params"}
            merged["params"] = group["params"]
            if "param_names" in group:
                merged["param_names"] = group["param_names"]
            self._check_hyperparameters(_resolved(merged, int(state_dict.get("step_count", 0))), f" (param group {gi})")
            new_groups.append(merged)
            offset += n
        new_state: dict[Key, State] = {}
        for sk, st in saved_state.items():
            if sk not in key_map:
                raise ValueError(f"state_dict: state for unknown parameter {sk!r}")
            key, p, saved_group = key_map[sk]
            new_state[key] = self._load_param_state(key, p, st, _resolved(saved_group, 0))
        self._drop_steady()
        self.param_groups = new_groups
        self._state = new_state
        self.step_count = int(state_dict.get("step_count", 0))
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

    def _load_param_state(self, key: Key, p: np.ndarray, st: Mapping[str, Any], hp: Mapping[str, Any]) -> State:
        expected = {n for n in self._state_slots(hp) if n is not None}
        out: State = {}
        for name, value in st.items():
            if name == "step":
                out["step"] = _whole_step(value, key)
            elif name in expected or isinstance(value, np.ndarray):
                arr = np.asarray(value)
                if arr.shape != p.shape:
                    raise ValueError(
                        f"state_dict: {name!r} of parameter {key!r} has shape {arr.shape}, the parameter has {p.shape}"
                    )
                out[name] = np.array(arr, dtype=p.dtype, order="C", copy=True)
            else:
                out[name] = value
        missing = expected - out.keys()
        if missing:
            raise ValueError(f"state_dict: parameter {key!r} lacks state {sorted(missing)}")
        if self.has_step and "step" not in out:
            raise ValueError(f"state_dict: parameter {key!r} lacks 'step'")
        return out

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k not in ("params", "param_names"):
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _state_lists(states: list[State], slot_names: list[str | None]) -> list[list[np.ndarray] | None]:
    """Per slot of the rule, that state array of every parameter (None for an unused slot)."""
    return [None if n is None else [st[n] for st in states] for n in slot_names]


def _resolved(group: Mapping[str, Any], count: int) -> dict[str, Any]:
    """A group's hyperparameters with callables evaluated at `count` (runs every step: keep it lean)."""
    return {
        k: v(count) if callable(v) else (_resolve_tuple(v, count) if type(v) is tuple else v)
        for k, v in group.items()
        if k != "params" and k != "param_names"
    }

