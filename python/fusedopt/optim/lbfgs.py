"""L-BFGS with torch.optim.LBFGS 2.13's iterates, over NumPy arrays: ``opt.step(closure)``."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import _checks
from ._axpy import Axpy
from ._dot import dot_for
from ._grads import align_grads
from ._line_search import Scalar, strong_wolfe
from ._params import as_groups, refuse_overlap, split_params
from ._types import GradsLike, Hyper, ParamsLike, at_step

Closure = Callable[[], tuple[Any, GradsLike]]
_LINE_SEARCHES = (None, "strong_wolfe")
_HISTORY = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")


def _whole(value: Any, name: str, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}: must be >= {low}, got {value!r}")
    return int(value)


def _check_group(group: Mapping[str, Any], count: int) -> float:
    """torch's hyperparameters, checked where a step would otherwise misbehave mid-way; returns
    lr at step count `count` (a callable is called once)."""
    lr = _checks.nonnegative(at_step(group["lr"], count), "lr")
    _whole(group["max_iter"], "max_iter", 1)
    _whole(group["max_eval"], "max_eval", 1)
    _checks.nonnegative(group["tolerance_grad"], "tolerance_grad")
    _checks.nonnegative(group["tolerance_change"], "tolerance_change")
    _whole(group["history_size"], "history_size", 1)
    fn = group["line_search_fn"]
    if fn is not None and not isinstance(fn, str):
        raise TypeError(f"line_search_fn: expected None or 'strong_wolfe', got {type(fn).__name__}")
    if fn not in _LINE_SEARCHES:
        raise ValueError(f"line_search_fn: expected None or 'strong_wolfe', got {fn!r:.80}")
    return lr


class LBFGS:
    """L-BFGS, computing what ``torch.optim.LBFGS`` (2.13) computes, iterate for iterate.

    ``step(closure)`` runs up to ``max_iter`` iterations; the closure evaluates the model at the
    parameters' current values and returns the loss and the gradients, the latter in the same
    structure as the params (a list, or a dict of names; a None gradient counts as zeros)::

        opt = fusedopt.LBFGS({"w": w, "b": b}, line_search_fn="strong_wolfe")
        def closure():
            loss, gw, gb = loss_and_grads(w, b)
            return loss, {"w": gw, "b": gb}
        for _ in range(20):
            loss = opt.step(closure)            # the closure's first loss, as torch returns it

    Hyperparameters as torch's: lr (1), max_iter (20), max_eval (None: max_iter * 5 // 4),
    tolerance_grad (1e-7), tolerance_change (1e-9), history_size (100), line_search_fn (None or
    "strong_wolfe"). One param group only, one dtype (float32 or float64). ``lr`` may be a
    function of the step count (``step_count``: the steps taken, each of up to ``max_iter``
    iterations), evaluated once at the start of each step.

    Exactness: the algorithm, its branches and the types of its scalars are torch's (a float32
    run compares and rounds in float32 where torch does). The vector updates (``add_`` with
    alpha) are one native fused multiply-add pass, as torch's. Dot products (in one fixed order,
    the same bits on every CPU), the first step's sum and the line search's sqrt round
    differently from torch's (MKL's dot and VML sqrt) in the last bit; with those three swapped
    in torch, the runs agree bit for bit (tests/test_lbfgs.py, docs/lbfgs.md).

    A step that raises (the closure, or the gradients it returns) leaves the parameters and the
    state as they were. ``state_dict()`` holds the history (torch's names, under the first
    parameter's key); pickle and deepcopy continue bitwise.
    """

    def __init__(
        self,
        params: ParamsLike,
        lr: Hyper = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
        *,
        backend: str = "native",
    ) -> None:
        _checks.choice(backend, "backend", ("native", "numpy"))
        if max_eval is None:
            max_eval = _whole(max_iter, "max_iter", 1) * 5 // 4
        self.defaults: dict[str, Any] = dict(
            lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn,
        )
        _check_group(self.defaults, 0)
        self.backend = backend
        self.step_count = 0  # steps taken: a callable lr is evaluated at it
        groups = as_groups(params)
        if len(groups) != 1:
            raise ValueError("params: LBFGS doesn't support per-parameter options (parameter groups)")
        group = groups[0]
        arrays, names = split_params(group["params"])
        if not arrays:
            raise ValueError("params: the optimizer got an empty parameter list")
        if len({id(p) for p in arrays}) != len(arrays):
            raise ValueError("params: the same array is listed twice")
        refuse_overlap([(arrays, names)])
        dtypes = {p.dtype for p in arrays}
        if len(dtypes) != 1:
            raise TypeError(f"params: LBFGS needs one dtype for every parameter, got {sorted(map(str, dtypes))}")
        if arrays[0].dtype not in (np.float32, np.float64):  # torch's rounding is mirrored for these only
            raise TypeError(f"params: LBFGS takes float32 or float64 parameters, got {arrays[0].dtype}")
        if sum(p.size for p in arrays) == 0:
            raise ValueError("params: every parameter is empty")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        _check_group(group, 0)
        group["params"] = arrays
        if names:
            group["param_names"] = names
        self.param_groups: list[dict[str, Any]] = [group]
        self._keys: list[int | str] = list(names) if names else list(range(len(arrays)))
        self._state: dict[str, Any] = {}

    # ---- the parameters as one flat vector -------------------------------------------------

    @property
    def params(self) -> list[np.ndarray]:
        return list(self.param_groups[0]["params"])

    def _flat_grad(self, grads: Any) -> np.ndarray:
        """torch's _gather_flat_grad: the closure's gradients, concatenated (None: zeros)."""
        params = self.params
        items = align_grads(grads, params, self.param_groups[0].get("param_names"), "closure")
        return np.concatenate([np.zeros(p.size, p.dtype) if g is None else g.reshape(-1) for p, g in zip(params, items)])

    def _split(self, flat: np.ndarray) -> list[np.ndarray]:
        out, offset = [], 0
        for p in self.params:
            out.append(flat[offset : offset + p.size].reshape(p.shape))
            offset += p.size
        return out

    def _evaluate(self, closure: Closure) -> tuple[Any, float, np.ndarray]:
        result = closure()
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"closure: must return (loss, grads), got {type(result).__name__}")
        loss, grads = result
        try:
            value = float(loss)
        except (TypeError, ValueError):
            raise TypeError(f"closure: the loss must be a number, got {type(loss).__name__}") from None
        return loss, value, self._flat_grad(grads)

    def _axpy(self, which: str, arrays: list[np.ndarray]) -> Axpy:
        """A native x += alpha*y over `arrays`, kept while they are the same arrays."""
        cache: dict[str, tuple[list[int], Axpy]] = self.__dict__.setdefault("_axpys", {})
        ids = [id(a) for a in arrays]
        hit = cache.get(which)
        if hit is None or hit[0] != ids:
            hit = (ids, Axpy(arrays, self.backend))
            cache[which] = hit
        return hit[1]

    # ---- the step: torch's LBFGS.step ------------------------------------------------------

    def step(self, closure: Closure) -> Any:  # noqa: C901 (torch's structure, kept for review)
        """Up to max_iter L-BFGS iterations; returns the loss of the closure's first call."""
        if not callable(closure):
            raise TypeError("closure: LBFGS.step needs a closure returning (loss, grads); "
                            f"got {type(closure).__name__}")
        if len(self.param_groups) != 1:
            raise ValueError(f"param_groups: LBFGS has exactly one param group, got {len(self.param_groups)}")
        group = self.param_groups[0]
        lr = _check_group(group, self.step_count)
        params = self.params
        saved = [p.copy() for p in params]
        try:
            loss = self._step(closure, group, params, lr)
        except BaseException:
            for p, s in zip(params, saved):
                np.copyto(p, s)
            raise
        self.step_count += 1
        return loss

    def _step(self, closure: Closure, group: dict[str, Any], params: list[np.ndarray], lr: float) -> Any:
        max_iter, max_eval = int(group["max_iter"]), int(group["max_eval"])
        tolerance_grad, tolerance_change = float(group["tolerance_grad"]), float(group["tolerance_change"])
        line_search_fn, history_size = group["line_search_fn"], int(group["history_size"])
        axpy_params = self._axpy("params", params)
        dot = dot_for(self.backend)

        def add_grad(step_size: Scalar, update: np.ndarray) -> None:
            axpy_params(step_size, self._split(update))

        # the state is committed only when the step finishes
        state = dict(self._state)
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss, loss, flat_grad = self._evaluate(closure)
        current_evals = 1
        state["func_evals"] += 1
        opt_cond = np.abs(flat_grad).max() <= tolerance_grad
        if opt_cond:
            self._state = state
            return orig_loss

        d: Any = state.get("d")
        t: Scalar = state.get("t")
        old_dirs: list[np.ndarray] = list(state.get("old_dirs") or [])
        old_stps: list[np.ndarray] = list(state.get("old_stps") or [])
        ro: list[Scalar] = list(state.get("ro") or [])
        H_diag: Scalar = state.get("H_diag")
        prev_flat_grad: np.ndarray | None = state.get("prev_flat_grad")
        prev_loss: Any = state.get("prev_loss")
        if "al" in state:
            state["al"] = list(state["al"])

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1

            # the descent direction
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                assert prev_flat_grad is not None
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = dot(y, s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / dot(y, y)
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                # the two-loop recursion, in two buffers of this optimizer's own
                q = self.__dict__.get("_q")
                if q is None or q.shape != flat_grad.shape or q.dtype != flat_grad.dtype:
                    q, r = np.empty_like(flat_grad), np.empty_like(flat_grad)
                    self._q, self._r = q, r
                r = self._r
                np.negative(flat_grad, out=q)
                axpy_q = self._axpy("q", [q])
                for i in range(num_old - 1, -1, -1):
                    al[i] = dot(old_stps[i], q) * ro[i]
                    axpy_q(-al[i], [old_dirs[i]])
                np.multiply(q, H_diag, out=r)
                axpy_r = self._axpy("r", [r])
                for i in range(num_old):
                    be_i = dot(old_dirs[i], r) * ro[i]
                    axpy_r(al[i] - be_i, [old_stps[i]])
                d = r.copy()

            prev_flat_grad = flat_grad.copy()
            prev_loss = loss

            # the step length
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = dot(flat_grad, d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search_fn is not None:
                x_init = [p.copy() for p in params]

                def obj_func(x: list[np.ndarray], t: Scalar, d: np.ndarray) -> tuple[float, np.ndarray]:
                    add_grad(t, d)
                    _, value, g = self._evaluate(closure)
                    for p, xi in zip(params, x):
                        np.copyto(p, xi)
                    return value, g

                loss, flat_grad, t, ls_func_evals = strong_wolfe(
                    obj_func, x_init, t, d, loss, flat_grad, gtd, dot=dot, max_ls=max_eval - current_evals
                )
                add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                add_grad(t, d)
                if n_iter != max_iter:
                    # re-evaluate only if not the last iteration (torch: no use in a stochastic setting)
                    _, loss, flat_grad = self._evaluate(closure)
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1

            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if n_iter == max_iter:
                break
            if current_evals >= max_eval:
                break
            if opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        self._state = state
        return orig_loss

    # ---- torch's surface: state, state_dict, pickling ----------------------------------------

    @property
    def state(self) -> dict[int | str, dict[str, Any]]:
        """torch's layout: LBFGS's global state under its first parameter's key (live)."""
        return {self._keys[0]: self._state} if self._state else {}

    def state_dict(self) -> dict[str, Any]:
        """Copies: {'state': {first key: {func_evals, n_iter, d, t, old_dirs, ...}}, 'param_groups',
        'step_count'} (torch's layout, plus the count a callable lr is evaluated at)."""
        group = {k: (list(v) if k == "param_names" else v) for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(self._keys)
        return {"state": copy.deepcopy(self.state), "param_groups": [group], "step_count": self.step_count}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from state_dict(); all or nothing (TypeError or ValueError before any change)."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        if "param_groups" not in state_dict or "state" not in state_dict:
            raise ValueError("state_dict: expected 'state' and 'param_groups' entries")
        groups, saved = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], Mapping):
            raise ValueError("state_dict: LBFGS has exactly one param group")
        if not isinstance(saved, Mapping):
            raise TypeError(f"state_dict: 'state' must be a dict, got {type(saved).__name__}")
        keys = groups[0].get("params")
        if not isinstance(keys, list) or len(keys) != len(self._keys):
            raise ValueError(f"state_dict: param group 0 must list {len(self._keys)} params")
        merged = {k: v for k, v in groups[0].items() if k not in ("params", "param_names")}
        for k in self.defaults:
            if k not in merged:
                raise ValueError(f"state_dict: param group 0 lacks {k!r}")
        step_count = _whole(state_dict.get("step_count", 0), "state_dict: 'step_count'", 0)  # torch's has none
        _check_group(merged, step_count)
        if len(saved) > 1 or (saved and next(iter(saved)) != keys[0]):
            raise ValueError(f"state_dict: LBFGS keeps its state under the first parameter's key {keys[0]!r}")
        state = self._checked_state(dict(next(iter(saved.values()))) if saved else {}, int(merged["history_size"]))
        group = self.param_groups[0]
        group.update(merged)
        self._state = state
        self.step_count = step_count

    def _checked_state(self, st: dict[str, Any], history_size: int) -> dict[str, Any]:
        n, dtype = sum(p.size for p in self.params), self.params[0].dtype

        def vector(value: Any, what: str) -> np.ndarray:
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiu":
                raise TypeError(f"state_dict: {what} has dtype {arr.dtype}; expected a real array")
            if arr.shape != (n,):
                raise ValueError(f"state_dict: {what} has shape {arr.shape}; expected ({n},), all parameters flat")
            return np.array(arr, dtype=dtype, copy=True)

        def scalar(value: Any, what: str) -> Scalar:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value  # torch keeps some as Python numbers (t = lr, H_diag = 1)
            arr = np.asarray(value)
            if arr.shape != () or arr.dtype.kind not in "fiu":
                raise TypeError(f"state_dict: {what} must be a real number, got {type(value).__name__}")
            return dtype.type(arr)

        out: dict[str, Any] = {}
        for name in ("func_evals", "n_iter"):
            out[name] = _whole(st.get(name, 0), f"state_dict: {name!r}", 0)
        if out["n_iter"] > 0 or any(k in st for k in _HISTORY):
            missing = [k for k in _HISTORY if k not in st]
            if missing:
                raise ValueError(f"state_dict: the LBFGS state lacks {missing}")
            lists = {}
            for name in ("old_dirs", "old_stps", "ro"):
                v = st[name]
                if not isinstance(v, (list, tuple)):
                    raise TypeError(f"state_dict: {name!r} must be a list, got {type(v).__name__}")
                lists[name] = list(v)
            if not len(lists["old_dirs"]) == len(lists["old_stps"]) == len(lists["ro"]) <= history_size:
                raise ValueError(f"state_dict: 'old_dirs', 'old_stps' and 'ro' must have one length <= history_size")
            out["old_dirs"] = [vector(v, f"'old_dirs'[{i}]") for i, v in enumerate(lists["old_dirs"])]
            out["old_stps"] = [vector(v, f"'old_stps'[{i}]") for i, v in enumerate(lists["old_stps"])]
            out["ro"] = [scalar(v, f"'ro'[{i}]") for i, v in enumerate(lists["ro"])]
            out["d"] = vector(st["d"], "'d'")
            out["prev_flat_grad"] = vector(st["prev_flat_grad"], "'prev_flat_grad'")
            out["t"] = scalar(st["t"], "'t'")
            out["H_diag"] = scalar(st["H_diag"], "'H_diag'")
            out["prev_loss"] = _checks.real(st["prev_loss"], "state_dict: 'prev_loss'")
            if "al" in st:
                al = st["al"]
                if not isinstance(al, (list, tuple)):
                    raise TypeError(f"state_dict: 'al' must be a list, got {type(al).__name__}")
                out["al"] = [None if v is None else scalar(v, "'al'") for v in al]
                out["al"] += [None] * (history_size - len(out["al"]))
        return out

    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        for scratch in ("_axpys", "_q", "_r"):  # native engines and buffers, rebuilt on demand
            d.pop(scratch, None)
        return d

    def __repr__(self) -> str:
        g = self.param_groups[0]
        lines = ["LBFGS (", "Parameter Group 0"]
        lines += [f"    {k}: {g[k]}" for k in sorted(g) if k not in ("params", "param_names")]
        return "\n".join(lines + [")"])

