"""The optimizer base class: torch's surface (param groups, state, state_dict, pickling) over a
native engine (``fusedopt._core.Engine``) that owns the step.

A step is one native call. The engine reads each group's current hyperparameters from the
``param_groups`` dicts (a callable is evaluated at the step count), checks them and every
gradient, derives the rule's scalars in float64, runs the norm pass and every kernel in one
parallel region without the GIL, then advances the counters. It is all or nothing, and one lock
per optimizer serializes steps and state reads from several threads. The rule itself (its
hyperparameters, state slots, scalars and loop) is declared once, in
``cpp/include/fusedopt/rules/<rule>.hpp``; a subclass gives it a signature and a docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from .. import _checks, _core, compressed_state, interop, reference
from ._params import as_groups, refuse_overlap, split_params
from ._types import GradsLike, ParamsLike

Key = int | str
State = dict[str, Any]

NonFiniteGradientError = _core.NonFiniteGradientError
NonFiniteGradientError.__doc__ = 'A step with ``nonfinite="raise"`` saw a NaN or infinite gradient; nothing was updated.'

_BACKENDS = ("native", "numpy")
_NONFINITE = ("propagate", "skip", "raise")
_CLIP_SCOPES = ("group", "global")
_STATE_DTYPES = ("bfloat16", "int8")
# torch.optim's implementation switches, meaningless here.
_TORCH_ONLY = ("foreach", "fused", "capturable", "differentiable")


class Optimizer:
    """Base class. Subclasses set ``rule`` (the native rule's name, also ``reference.<rule>``)
    and pass their hyperparameters, named as the rule declares them, as ``defaults``."""

    rule: ClassVar[str]
    has_step: ClassVar[bool]  # keeps a per-parameter 'step' count, as torch does (from the rule)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "rule"):  # not an intermediate base (Schedule-Free's)
            cls.has_step = bool(_core.rule_info(cls.rule)["has_step"])

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
        master_weights: bool = False,
        stochastic_rounding: bool = False,
        rounding_seed: int = 0,
        state_dtype: str | None = None,
        **unknown: Any,
    ) -> None:
        for name in unknown:
            hint = (" (fusedopt is always fused: one native step over every parameter; drop it)"
                    if name in _TORCH_ONLY else "")
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}{hint}")
        _checks.choice(backend, "backend", _BACKENDS)
        _checks.choice(nonfinite, "nonfinite", _NONFINITE)
        _checks.choice(clip_scope, "clip_scope", _CLIP_SCOPES)
        if max_grad_norm is not None:
            max_grad_norm = _checks.nonnegative(max_grad_norm, "max_grad_norm")
        if clip_value is not None:
            clip_value = _checks.nonnegative(clip_value, "clip_value")
        if max_grad_norm is not None and clip_value is not None:
            raise ValueError("max_grad_norm and clip_value: choose one way to clip")
        self.defaults: dict[str, Any] = dict(defaults)
        self.backend = backend
        self.max_grad_norm = max_grad_norm
        self.clip_value = clip_value
        self.clip_scope = clip_scope
        self.nonfinite = nonfinite
        # bfloat16 / float16 parameters only (docs/low_precision.md)
        self.master_weights = _checks.flag(master_weights, "master_weights")
        self.stochastic_rounding = _checks.flag(stochastic_rounding, "stochastic_rounding")
        self.rounding_seed = _checks.seed(rounding_seed, "rounding_seed")
        # Compressed optimizer state (docs/compressed_state.md); None: the parameters' precision.
        self.state_dtype = None if state_dtype is None else _checks.choice(state_dtype, "state_dtype", _STATE_DTYPES)
        self._names_given: bool | None = None
        self._engine = self._new_engine()
        self._engine.check_hyperparameters(self.defaults, 0, "", construction=True)
        if params is not None:
            groups = as_groups(params)
            if not groups or not any(True for _ in groups):
                raise ValueError("params: the optimizer got an empty parameter list")
            self._add_param_groups(groups)
            if not self.params:
                raise ValueError("params: the optimizer got an empty parameter list")

    def _new_engine(self) -> Any:
        return _core.Engine(
            self.rule,
            [],
            {},
            max_norm=self.max_grad_norm,
            per_group=self.clip_scope == "group",
            clip_value=self.clip_value,
            nonfinite=self.nonfinite,
            reference=reference.run_step if self.backend == "numpy" else None,
            # (getattr: an optimizer pickled before these options existed)
            master_weights=getattr(self, "master_weights", False),
            stochastic_rounding=getattr(self, "stochastic_rounding", False),
            seed=getattr(self, "rounding_seed", 0),
            state_dtype=getattr(self, "state_dtype", None),
        )

    # ---- the step ---------------------------------------------------------------------------

    def step(self, grads: GradsLike) -> None:
        """Update every parameter in place from `grads` (same structure as the params; each an
        array of its parameter's dtype and shape, for a 0-d parameter also a NumPy scalar; a None
        gradient skips its parameter: no state, no step count, no weight decay)."""
        self._engine.step(grads)

    def update(self, params: ParamsLike, grads: GradsLike) -> ParamsLike:
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

    # ---- what the engine keeps ----------------------------------------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The param-group dicts, as in torch: edit a hyperparameter and the next step uses it."""
        return self._engine.param_groups  # type: ignore[no-any-return]

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self._engine.param_groups[:] = groups

    @property
    def state(self) -> dict[Key, State]:
        """Per-parameter state (torch's names), keyed like state_dict: live dicts of live arrays.
        A state array replaced here is checked at the next step like one given at construction."""
        return self._engine.state()  # type: ignore[no-any-return]

    @property
    def step_count(self) -> int:
        """Successful steps; a callable hyperparameter is evaluated at this count."""
        return self._engine.step_count  # type: ignore[no-any-return]

    @step_count.setter
    def step_count(self, value: int) -> None:
        self._engine.step_count = value

    @property
    def skipped_steps(self) -> int:
        """Steps skipped for non-finite gradients (``nonfinite="skip"``)."""
        return self._engine.skipped_steps  # type: ignore[no-any-return]

    @skipped_steps.setter
    def skipped_steps(self, value: int) -> None:
        self._engine.skipped_steps = value

    @property
    def last_grad_norm(self) -> float | None:
        """The gradient norm of the last step, when it computed one (clipping or a nonfinite policy)."""
        return self._engine.last_grad_norm  # type: ignore[no-any-return]

    @property
    def last_group_grad_norms(self) -> list[float]:
        """Per group, with ``clip_scope="group"``."""
        return self._engine.last_group_grad_norms  # type: ignore[no-any-return]

    @property
    def params(self) -> list[np.ndarray]:
        """Every parameter, in order over all groups."""
        return [p for g in self.param_groups for p in g["params"]]

    # ---- param groups ---------------------------------------------------------------------

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: {'params': list or dict of arrays, **hyperparameters}."""
        self._add_param_groups([param_group])

    def _add_param_groups(self, new: Sequence[Any]) -> None:
        """Check the `new` groups against each other and this optimizer's, then add them all (or
        none). The earlier parameters are gathered once for all of them, so an optimizer built
        from thousands of groups (a learning rate per layer) is built in linear time."""
        earlier = self.params
        other_groups = {id(p) for p in earlier}  # the arrays of the groups before the one checked
        taken = {k for k in self._engine.keys() if isinstance(k, str)}
        names_given = self._names_given
        checked: list[dict[str, Any]] = []
        for param_group in new:
            if not isinstance(param_group, Mapping) or "params" not in param_group:
                raise TypeError("param_group: expected a dict with a 'params' entry")
            group = dict(param_group)
            params, names = split_params(group["params"])
            if names_given is not None and (names is not None) != names_given:
                raise ValueError("params: all param groups must be given by name, or none")
            names_given = names is not None
            seen: set[int] = set()
            for i, p in enumerate(params):
                label = names[i] if names else i
                if id(p) in other_groups:
                    raise ValueError(f"params[{label!r}]: this array is already in another param group")
                if id(p) in seen:
                    raise ValueError(f"params[{label!r}]: the same array is listed twice")
                seen.add(id(p))
                self._engine.check_param(p, f"params[{label!r}]")  # the rule's own layout needs (Adafactor: C order)
            other_groups |= seen
            if names:
                for n in names:
                    if n in taken:
                        raise ValueError(f"params: the name {n!r} is already used by another param group")
                taken.update(names)
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            where = f" (param group {len(self.param_groups) + len(checked)})"
            self._engine.check_hyperparameters(group, self.step_count, where)
            group["params"] = params
            if names:
                group["param_names"] = names
            checked.append(group)
        refuse_overlap([(g["params"], g.get("param_names")) for g in checked], earlier)
        self._names_given = names_given
        for group in checked:
            self.param_groups.append(group)
            self._on_group_added(group)

    def _on_group_added(self, group: dict[str, Any]) -> None:
        """Optimizers that create state eagerly (Adagrad) do it here."""

    def _group_keys(self, group: Mapping[str, Any]) -> list[Key]:
        """The state keys of one of this optimizer's groups."""
        keys = self._engine.keys()
        offset = 0
        for g in self.param_groups:
            if g is group:
                return list(keys[offset : offset + len(g["params"])])
            offset += len(g["params"])
        raise ValueError("param_group: not one of this optimizer's groups")

    # ---- state_dict -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Copies (not live views): {'state': {key: {...}}, 'param_groups': [...], counters}.
        Keys are parameter names where names were given, else positions over all groups."""
        state, keys, step_count, skipped_steps = self._engine.snapshot()
        groups = []
        offset = 0
        for g in self.param_groups:
            n = len(g["params"])
            entry = {k: (list(v) if k == "param_names" else v) for k, v in g.items() if k != "params"}
            entry["params"] = list(keys[offset : offset + n])
            groups.append(entry)
            offset += n
        return {
            "state": state,
            "param_groups": groups,
            "step_count": step_count,
            "skipped_steps": skipped_steps,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any], *, convert_state: bool = False) -> None:
        """Restore from state_dict(). All or nothing: the structure, every group's hyperparameters,
        every array and counter are checked before anything changes (TypeError or ValueError).
        Parameters are matched by position in their group, as in torch, except that a group saved
        with the same parameter names in another order is matched by name.
        State saved in another storage (``state_dtype``: float, bfloat16, int8) loads only with
        ``convert_state=True``, which converts it (docs/compressed_state.md). A torch.optim
        state_dict (tensors, torch's keys) is converted as ``interop.from_torch_state_dict`` does."""
        convert_state = _checks.flag(convert_state, "convert_state")
        if interop.is_torch_state_dict(state_dict):
            interop.from_torch_state_dict(self, state_dict)
            return
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        if "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError("state_dict: expected 'state' and 'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, list):
            raise TypeError(f"state_dict: 'param_groups' must be a list, got {type(saved_groups).__name__}")
        if not isinstance(saved_state, Mapping):
            raise TypeError(f"state_dict: 'state' must be a dict, got {type(saved_state).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict: has {len(saved_groups)} param groups, the optimizer has {len(self.param_groups)}"
            )
        keys = self._engine.keys()
        key_map: dict[Any, tuple[Key, np.ndarray, dict[str, Any], int]] = {}
        new_groups = []
        offset = 0
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            where = f"state_dict: param group {gi}"
            if not isinstance(saved, Mapping):
                raise TypeError(f"{where}: expected a dict, got {type(saved).__name__}")
            n = len(group["params"])
            saved_keys = saved.get("params", [])
            if not isinstance(saved_keys, list):
                raise TypeError(f"{where}: 'params' must be a list of keys, got {type(saved_keys).__name__}")
            if len(saved_keys) != n:
                raise ValueError(f"{where} has {len(saved_keys)} params, the optimizer's has {n}")
            merged = {k: v for k, v in saved.items() if k != "params"}
            merged["params"] = group["params"]
            if "param_names" in group:
                merged["param_names"] = group["param_names"]
            order = _name_order(saved_keys, group.get("param_names"))
            for i, sk in enumerate(saved_keys):
                j = order[i] if order else i
                try:
                    if sk in key_map:
                        raise ValueError(f"state_dict: parameter key {sk!r} is listed twice in param_groups")
                except TypeError:
                    raise TypeError(f"{where}: 'params' key {sk!r} is not hashable") from None
                key_map[sk] = (keys[offset + j], group["params"][j], merged, gi)
            new_groups.append(merged)
            offset += n
        new_state: dict[Key, State] = {}
        for sk, st in saved_state.items():
            try:
                known = sk in key_map
            except TypeError:
                known = False
            if not known:
                raise ValueError(f"state_dict: state for unknown parameter {sk!r}")
            key, p, merged, gi = key_map[sk]
            if not isinstance(st, Mapping):
                raise TypeError(f"state_dict: state of parameter {key!r}: expected a dict, got {type(st).__name__}")
            new_state[key] = self._load_param_state(key, p, st, merged, gi, convert_state)
        position = {k: i for i, k in enumerate(keys)}
        _pool_state(new_state, {key: (gi, position[key], p) for key, p, _, gi in key_map.values()})
        # The engine checks the counters, every group's hyperparameters and every array, then swaps.
        self._engine.load(
            new_groups, new_state, state_dict.get("step_count", 0), state_dict.get("skipped_steps", 0)
        )

    def _load_param_state(self, key: Key, p: np.ndarray, st: Mapping[str, Any], group: dict[str, Any], gi: int,
                          convert_state: bool) -> State:
        slots = self._engine.slot_shapes(group, 0, f" (param group {gi})", p)  # {name: (shape, dtype)}
        expected = set(slots)
        info = _core.rule_info(self.rule)
        counters = ("step", *info["extra_counters"])
        st = _stored_as(self.state_dtype, key, p, st, info, convert_state)
        out: State = {}
        for name, value in st.items():
            if name in counters:
                out[name] = value  # checked by the engine (a whole number >= 0, a number; ints stay exact)
            elif name in expected or isinstance(value, np.ndarray):
                shape, dtype = slots.get(name, (None, None))
                out[name] = _state_array(value, p, f"state_dict: {name!r} of parameter {key!r}", shape, dtype)
            else:
                out[name] = value
        missing = expected - out.keys()
        if missing:
            raise ValueError(f"state_dict: parameter {key!r} lacks state {sorted(missing)}")
        return out

    # ---- pickle and copy: the engine is rebuilt from what it keeps ----------------------------

    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        engine = d.pop("_engine")
        state, _, step_count, skipped_steps = engine.snapshot(copy_arrays=False)
        d["_kept"] = (engine.param_groups, state, step_count, skipped_steps)
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        groups, state, step_count, skipped = d.pop("_kept")
        self.__dict__.update(d)
        self._engine = self._new_engine()
        self._engine.load(list(groups), {k: dict(st) for k, st in state.items()}, step_count, skipped)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k not in ("params", "param_names"):
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


def _name_order(saved: list[Any], names: list[str] | None) -> list[int] | None:
    """Where each saved key goes when a group was saved with the same parameter names in another
    order (a dict of params built in another order: by position, as torch maps, the states of
    equal-shaped parameters would swap); None: by position."""
    if names is None or saved == names:
        return None
    try:
        same = len(saved) == len(names) and set(saved) == set(names)
    except TypeError:  # (an unhashable key: load_state_dict names it)
        return None
    return [names.index(k) for k in saved] if same else None


def _pool_state(state: dict[Key, State], where: Mapping[Key, tuple[int, int, np.ndarray]]) -> None:
    """State arrays (loaded, or made at construction) moved into one buffer per param group and
    slot, in parameter order (`where`: each key's group, position and parameter), as a step
    creates them: arrays allocated one by one interleave their slots, and each slot's stream then
    jumps at every parameter (docs/state_arena.md). Each is placed on its cache lines as its
    parameter is (Segment::lead)."""
    slots: dict[tuple[int, str], list[tuple[int, Key]]] = {}
    for key, st in state.items():
        for name, v in st.items():
            if isinstance(v, np.ndarray):
                slots.setdefault((where[key][0], name), []).append((where[key][1], key))
    for (_, name), items in slots.items():
        items.sort(key=lambda item: item[0])
        arrays = [state[k][name] for _, k in items]
        for (_, key), a in zip(items, _core.pooled_copies(arrays, [where[k][2] for _, k in items])):
            state[key][name] = a


def state_dtype(p: np.ndarray) -> np.dtype[Any]:
    """The dtype of a parameter's state arrays: float32 for bfloat16 and float16 parameters
    (updated in float32, docs/low_precision.md), else the parameter's own."""
    return np.dtype(np.float32) if p.dtype.itemsize == 2 else p.dtype


def _state_array(value: Any, p: np.ndarray, what: str, shape: tuple[int, ...] | None = None,
                 dtype: str | None = None) -> np.ndarray:
    """A saved state array as a new array of its slot's dtype (default: the parameter's state
    dtype) and shape (default: the parameter's, and then its layout). Real numbers only: a complex
    array would lose its imaginary part, a masked one its mask."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{what} is a numpy.ma.MaskedArray; its mask would be ignored")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" and arr.dtype.name != "bfloat16":
        raise TypeError(f"{what} has dtype {arr.dtype}; expected a real floating-point array")
    expected = p.shape if shape is None else tuple(shape)
    if arr.shape != expected:
        raise ValueError(f"{what} has shape {arr.shape}, the parameter has {p.shape}"
                         + ("" if shape is None else f" and keeps it as {expected}"))
    want = state_dtype(p) if dtype is None else compressed_state.numpy_dtype(dtype)
    if shape is not None and tuple(shape) != p.shape:  # a slot of another shape (rule.hpp, SlotShape): C order
        return np.array(arr, dtype=want, order="C", copy=True)
    out = np.empty_like(p, dtype=want)  # the parameter's layout (C, Fortran, ...)
    out[...] = arr
    return out


def _stored_as(storage: str | None, key: Key, p: np.ndarray, st: Mapping[str, Any], info: dict[str, Any],
               convert: bool) -> Mapping[str, Any]:
    """A parameter's saved state with each slot in this optimizer's storage: as saved where it
    matches, converted when asked (else ValueError naming the slot)."""
    out = dict(st)
    for name, codec in zip(info["slots"], info["slot_codecs"]):
        if name not in st:
            continue
        saved = compressed_state.storage_of(name, st)
        if saved == (storage or "float") or (storage is None and saved == "bfloat16"):  # (widened exactly)
            continue
        what = f"state_dict: {name!r} of parameter {key!r}"
        if not convert:
            raise ValueError(f"{what} is {saved} state and this optimizer keeps {storage or 'float'} state "
                             "(state_dtype); pass convert_state=True to convert it")
        if codec is None:
            raise ValueError(f"{what}: rule {info.get('name', '')!r} cannot keep compressed state")
        values = compressed_state.read_saved(name, st, p, what, codec != "nonnegative")
        out.pop(f"{name}_absmax", None)
        out.update(compressed_state.encode_like(p, values, name, storage, codec != "nonnegative"))
    return out
