"""torch.optim optimizers that step CPU torch parameters through fusedopt: a drop-in.

    import fusedopt.torch
    opt = fusedopt.torch.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

Each class is a ``torch.optim.Optimizer`` (param_groups, zero_grad, step hooks, lr schedulers,
state_dict in torch's layout) whose ``step`` is ONE fusedopt step over NumPy views of the
parameters and their gradients: same math as torch.optim (see the fusedopt class of the same
name), no copies. torch's ``param_groups`` stay the truth: their hyperparameters (as schedulers
set them) are handed to fusedopt at every step. fusedopt's own options (``max_grad_norm``,
``clip_value``, ``clip_scope``, ``nonfinite``, ``backend``; SGD's ``formulation``) are accepted
as keywords too.

Per step, per parameter: its gradient is viewed afresh (torch's default ``zero_grad`` frees it),
a ``None`` gradient skips the parameter as torch does (no state, no step count), and
``p.data = ...`` (new storage) is noticed and stepped in place of the old buffer. Parameters
must be dense CPU tensors of float32, float64, bfloat16 or float16, in any order of their axes
(``channels_last`` too).

Importing this module imports torch; ``import fusedopt`` does not.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np
import torch

from . import _core, interop
from . import optim as _optim
from .sparse import RowSparse

__all__ = ["ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "AdamWScheduleFree", "Adamax", "LARS", "Lamb", "Lion", "Muon",
           "NAdam", "Optimizer", "RAdam", "RMSprop", "Rprop", "SGD", "SGDScheduleFree", "SparseAdam"]

# torch's implementation switches: the values that describe what fusedopt does.
_FLAGS_ACCEPTED: dict[str, tuple[Any, ...]] = {
    "foreach": (None,),
    "fused": (None, True),
    "capturable": (False,),
    "differentiable": (False,),
}
_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor's memory as a NumPy array, no copy (bfloat16 as ml_dtypes.bfloat16: NumPy has
    none of its own and torch's .numpy() refuses it)."""
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _tensor(a: np.ndarray) -> torch.Tensor:
    """The reverse of _numpy: a tensor sharing a NumPy array's memory."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _number(value: Any) -> Any:
    """A hyperparameter as fusedopt takes it: torch also takes a one-element tensor (lr, betas'
    items: ``lr=torch.tensor(1e-3)``), read here at its current value; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, tuple) and any(isinstance(x, torch.Tensor) for x in value):
        return tuple(_number(x) for x in value)
    return value


def _label(group: dict[str, Any], g: int, j: int) -> str:
    names = group.get("param_names")
    return f"parameter {names[j]!r}" if names else f"param_groups[{g}]['params'][{j}]"


def _view(p: torch.Tensor, where: str) -> np.ndarray:
    """The parameter's storage as a writeable NumPy array (no copy), or a clear refusal."""
    if p.device.type != "cpu":
        raise TypeError(f"{where}: is on {p.device}; fusedopt.torch steps CPU tensors only")
    if p.layout != torch.strided:
        raise TypeError(f"{where}: {p.layout} tensors are not supported; fusedopt steps dense tensors")
    if p.dtype not in _DTYPES:
        raise TypeError(f"{where}: dtype {p.dtype} is not supported; use torch.float32, float64, bfloat16 or float16")
    return _numpy(p.detach())  # (its layout: Optimizer._param_view checks it)


def _grad_view(p: torch.Tensor, where: str) -> np.ndarray | RowSparse | None:
    """The careful path for a gradient the fast ``g.numpy()`` refused (one that requires grad,
    after ``backward(create_graph=True)``; a sparse one: ``nn.Embedding(sparse=True)``'s, as
    fusedopt.RowSparse for the optimizers that take it, docs/sparse.md)."""
    g = p.grad
    if g is None:
        return None
    if g.layout == torch.sparse_coo and g.sparse_dim() == 1:
        return RowSparse(g._indices()[0].numpy(), _numpy(g._values().detach().contiguous()))
    if g.layout != torch.strided:
        raise TypeError(f"{where}: its gradient is {g.layout}; fusedopt steps dense gradients")
    return _numpy(g.detach())


def _scalar_dtype(name: str) -> torch.dtype:
    """torch keeps step counts and NAdam's/ASGD's scalars in float32; Schedule-Free's float64
    counters (lr_max, weight_sum: Python floats in schedulefree) keep their bits in float64."""
    return torch.float32 if name in interop._FLOAT32_SCALARS else torch.float64


class _Link:
    """One torch param group and its fusedopt twin (a group of NumPy views)."""

    __slots__ = ("group", "tensors", "ptrs", "twin")

    def __init__(self, group: dict[str, Any], twin: dict[str, Any]) -> None:
        self.group = group
        self.tensors = list(group["params"])
        self.ptrs = [p.data_ptr() for p in self.tensors]
        self.twin = twin


class Optimizer(torch.optim.Optimizer):
    """Base class: a torch.optim.Optimizer stepped by the fusedopt optimizer ``_fusedopt_class``."""

    _fusedopt_class: ClassVar[type[_optim.Optimizer] | type[_optim.Muon]]

    def __init__(
        self,
        params: Iterable[Any],
        *args: Any,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        **kwargs: Any,
    ) -> None:
        flags = {"foreach": foreach, "fused": fused, "capturable": capturable, "differentiable": differentiable}
        for name, value in flags.items():
            if not any(value is ok for ok in _FLAGS_ACCEPTED[name]):
                raise ValueError(
                    f"{type(self).__name__}: {name}={value!r} is not available; fusedopt is always fused "
                    f"(one native step over every parameter); leave {name} at its default"
                )
        args = tuple(_number(a) for a in args)
        kwargs = {k: _number(v) for k, v in kwargs.items()}
        self._fo_args = (args, kwargs)
        self._fo = self._fusedopt_class(None, *args, **kwargs)  # checks the hyperparameters
        self._hyper_keys = tuple(self._fo.defaults)
        self._links: list[_Link] = []
        torch_keys = interop._group_defaults(self._fo)
        defaults = dict(self._fo.defaults)
        defaults.update({k: v for k, v in flags.items() if k in torch_keys})
        super().__init__(params, defaults)

    # ---- param groups: torch's dicts, each with a fusedopt twin ---------------------------------

    def _param_view(self, group: dict[str, Any], g: int, j: int) -> np.ndarray:
        """Parameter j of group g as an array, checked as the optimizer checks its parameters (any
        dense layout, channels_last too, unless the rule needs C order), named as torch names it."""
        where = _label(group, g, j)
        a = _view(group["params"][j], where)
        engine = getattr(self._fo, "_engine", None)  # (Muon steps in Python: no rule with layout needs)
        if engine is not None:
            engine.check_param(a, where)  # dense, any order, and the rule's own needs (Adafactor: C order)
        else:
            _core.check_array(a, where, written=True, low_precision=True, dense=True)
        return a

    def _twin(self, group: dict[str, Any], g: int) -> dict[str, Any]:
        twin = {k: _number(group[k]) for k in self._hyper_keys}
        twin["params"] = [self._param_view(group, g, j) for j in range(len(group["params"]))]
        return twin

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._fo.add_param_group(self._twin(group, len(self.param_groups) - 1))
        except BaseException:
            self.param_groups.pop()
            raise
        self._links.append(_Link(group, self._fo.param_groups[-1]))

    def _structure_changed(self) -> bool:
        groups = self.param_groups
        if len(groups) != len(self._links):
            return True
        return any(g is not k.group or len(g["params"]) != len(k.ptrs) for g, k in zip(groups, self._links))

    def _relink(self) -> None:
        """param_groups were edited other than by add_param_group (a list changed, a group
        replaced): a new fusedopt optimizer over the groups as they are, keeping each
        parameter's state (torch keys state by tensor, fusedopt by position)."""
        old = self._fo
        saved = old.state_dict()
        tensors = [p for k in self._links for p in k.tensors]
        by_tensor = {id(tensors[i]): st for i, st in saved["state"].items()}
        args, kwargs = self._fo_args
        self._fo = self._fusedopt_class(None, *args, **kwargs)
        self._links = []
        for g, group in enumerate(self.param_groups):
            self._fo.add_param_group(self._twin(group, g))
            self._links.append(_Link(group, self._fo.param_groups[-1]))
        now = [p for k in self._links for p in k.tensors]
        fresh = self._fo.state_dict()
        fresh["state"] = {i: by_tensor[id(p)] for i, p in enumerate(now) if id(p) in by_tensor}
        for counter in ("step_count", "skipped_steps"):  # (Muon keeps no skipped_steps)
            if counter in saved:
                fresh[counter] = saved[counter]
        self._fo.load_state_dict(fresh)
        self._retwin()

    def _retwin(self) -> None:
        """fusedopt's load_state_dict installs new group dicts: link them."""
        for link, twin in zip(self._links, self._fo.param_groups):
            link.twin = twin

    def _repoint(self, g: int, link: _Link) -> None:
        """Some parameter of the group has new storage (``p.data = ...``) or another tensor took
        its place in the list."""
        group = link.group
        tensors = group["params"]
        if any(p is not q for p, q in zip(tensors, link.tensors)):
            self._relink()
            return
        arrays = link.twin["params"]
        for j, p in enumerate(tensors):
            if p.data_ptr() != link.ptrs[j] or arrays[j].shape != tuple(p.shape):
                arrays[j] = self._param_view(group, g, j)
                link.ptrs[j] = p.data_ptr()

    def _sync(self, keys: Iterable[str]) -> None:
        """Bring the fusedopt twins up to date: structure, storage, the hyperparameters `keys`."""
        if self._structure_changed():
            self._relink()
        for g, (group, link) in enumerate(zip(self.param_groups, self._links)):
            if [p.data_ptr() for p in group["params"]] != link.ptrs:
                self._repoint(g, link)
            twin = link.twin
            for k in keys:
                twin[k] = _number(group[k])

    # ---- the step ---------------------------------------------------------------------------

    def _grads(self) -> list[np.ndarray | RowSparse | None]:
        """The gradients as NumPy views aligned with fusedopt's parameters."""
        self._sync(self._hyper_keys)
        grads: list[np.ndarray | RowSparse | None] = []
        for g, group in enumerate(self.param_groups):
            tensors = group["params"]
            try:
                grads += [None if (t := p.grad) is None else t.numpy() for p in tensors]
            except (RuntimeError, TypeError):
                grads += [_grad_view(p, _label(group, g, j)) for j, p in enumerate(tensors)]
        return grads

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One fusedopt step over every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = self._grads()  # (first: it may relink, replacing self._fo)
        self._fo.step(grads)  # (a non-contiguous gradient, as torch allows, is read through a copy)
        return loss

    # ---- state ------------------------------------------------------------------------------

    @property
    def state(self) -> defaultdict[torch.Tensor, dict[str, Any]]:
        """Per-parameter state keyed by tensor, as torch's: arrays as tensors sharing fusedopt's
        memory (in-place edits reach the next step), ``step`` (and NAdam's ``mu_product``,
        ASGD's ``eta`` and ``mu``) as float32 0-d tensors, Schedule-Free's ``lr_max`` and
        ``weight_sum`` as float64 ones (copies: set counters through load_state_dict)."""
        self._sync(())
        live = self._fo.state
        tensors = [p for k in self._links for p in k.tensors]
        out: defaultdict[torch.Tensor, dict[str, Any]] = defaultdict(dict)
        for i, st in live.items():
            out[tensors[int(i)]] = {
                name: _tensor(v) if isinstance(v, np.ndarray) else torch.tensor(float(v), dtype=_scalar_dtype(name))
                for name, v in st.items()
            }
        return out

    @state.setter
    def state(self, value: Any) -> None:
        if value:  # torch.optim.Optimizer.__init__ assigns an empty defaultdict
            raise AttributeError(f"{type(self).__name__}.state is fusedopt's; restore it with load_state_dict")

    def state_dict(self) -> dict[str, Any]:
        """torch's layout (fusedopt.interop.to_torch_state_dict): loads into torch.optim.<Same>."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        self._sync({k for g in self.param_groups for k in g if k not in ("params", "param_names")})
        state_dict = interop.to_torch_state_dict(self._fo)
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            if "param_names" in group:
                saved["param_names"] = list(group["param_names"])
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """From torch.optim.<Same>.state_dict() or this class's (fusedopt.interop.from_torch_state_dict);
        all or nothing. Hyperparameters come from the state dict, as in torch."""
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        self._sync(())
        interop.from_torch_state_dict(self._fo, state_dict)
        self._retwin()
        for group, saved, link in zip(self.param_groups, state_dict["param_groups"], self._links):
            for k, v in saved.items():
                if k != "params" and k not in _FLAGS_ACCEPTED:
                    group[k] = copy.deepcopy(link.twin[k] if k in link.twin else v)  # twin: as plain numbers
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    # ---- pickle and deepcopy: the parameters travel in param_groups, the rest as a state_dict --

    def __getstate__(self) -> dict[str, Any]:
        return {
            "param_groups": self.param_groups,
            "_fo_args": self._fo_args,
            "_flags": {k: self.defaults[k] for k in _FLAGS_ACCEPTED if k in self.defaults},
            "_state_dict": self.state_dict(),
        }

    def __setstate__(self, saved: dict[str, Any]) -> None:
        args, kwargs = saved["_fo_args"]
        self.__init__(saved["param_groups"], *args, **saved["_flags"], **kwargs)  # type: ignore[misc]
        self.load_state_dict(saved["_state_dict"])


class SGD(Optimizer):
    """torch.optim.SGD, stepped by :class:`fusedopt.SGD`."""

    _fusedopt_class = _optim.SGD


class Adagrad(Optimizer):
    """torch.optim.Adagrad, stepped by :class:`fusedopt.Adagrad` (state created at construction, as torch does)."""

    _fusedopt_class = _optim.Adagrad


class RMSprop(Optimizer):
    """torch.optim.RMSprop, stepped by :class:`fusedopt.RMSprop`."""

    _fusedopt_class = _optim.RMSprop


class Adam(Optimizer):
    """torch.optim.Adam, stepped by :class:`fusedopt.Adam`."""

    _fusedopt_class = _optim.Adam


class AdamW(Optimizer):
    """torch.optim.AdamW, stepped by :class:`fusedopt.AdamW`."""

    _fusedopt_class = _optim.AdamW


class Adamax(Optimizer):
    """torch.optim.Adamax, stepped by :class:`fusedopt.Adamax`."""

    _fusedopt_class = _optim.Adamax


class NAdam(Optimizer):
    """torch.optim.NAdam, stepped by :class:`fusedopt.NAdam`."""

    _fusedopt_class = _optim.NAdam


class RAdam(Optimizer):
    """torch.optim.RAdam, stepped by :class:`fusedopt.RAdam`."""

    _fusedopt_class = _optim.RAdam


class SparseAdam(Optimizer):
    """torch.optim.SparseAdam, stepped by :class:`fusedopt.SparseAdam` (sparse COO gradients with
    one sparse dimension, as ``nn.Embedding(sparse=True)`` makes them)."""

    _fusedopt_class = _optim.SparseAdam


class Lion(Optimizer):
    """Lion (Chen et al. 2023), which torch.optim lacks, stepped by :class:`fusedopt.Lion`; its
    state_dict has torch's layout with Lion's own group keys."""

    _fusedopt_class = _optim.Lion


class Adadelta(Optimizer):
    """torch.optim.Adadelta, stepped by :class:`fusedopt.Adadelta`."""

    _fusedopt_class = _optim.Adadelta


class Adafactor(Optimizer):
    """torch.optim.Adafactor, stepped by :class:`fusedopt.Adafactor` (factored second moment for
    matrices: ``row_var`` and ``col_var``; contiguous parameters, as every parameter here)."""

    _fusedopt_class = _optim.Adafactor


class Rprop(Optimizer):
    """torch.optim.Rprop, stepped by :class:`fusedopt.Rprop`."""

    _fusedopt_class = _optim.Rprop


class ASGD(Optimizer):
    """torch.optim.ASGD, stepped by :class:`fusedopt.ASGD` (the average is ``state[p]['ax']``)."""

    _fusedopt_class = _optim.ASGD


class Lamb(Optimizer):
    """LAMB as pytorch_optimizer's ``Lamb`` computes it, stepped by :class:`fusedopt.Lamb`; its
    state_dict has torch's layout with fusedopt.Lamb's group keys."""

    _fusedopt_class = _optim.Lamb


class LARS(Optimizer):
    """LARS as pytorch_optimizer's ``LARS`` computes it, stepped by :class:`fusedopt.LARS`; its
    state_dict has torch's layout with fusedopt.LARS's group keys."""

    _fusedopt_class = _optim.LARS


class _ScheduleFree(Optimizer):
    """Schedule-Free's ``train()``/``eval()`` parameter swap: one native pass over the
    parameters' storage (they are fusedopt's arrays), with each torch group's ``train_mode``
    kept the truth as every hyperparameter is."""

    def train(self) -> None:
        """Parameters to y, for steps (groups already in train mode are left alone)."""
        self._swap(True)

    def eval(self) -> None:
        """Parameters to x, the average, for evaluation and checkpoints (groups already in eval
        mode are left alone)."""
        self._swap(False)

    def _swap(self, to_train: bool) -> None:
        self._sync(self._hyper_keys)
        fo = self._fo
        assert isinstance(fo, _optim.SGDScheduleFree | _optim.AdamWScheduleFree)
        fo.train() if to_train else fo.eval()
        for group, link in zip(self.param_groups, self._links):
            group["train_mode"] = link.twin["train_mode"]


class SGDScheduleFree(_ScheduleFree):
    """schedulefree.SGDScheduleFree (a torch optimizer), stepped by :class:`fusedopt.SGDScheduleFree`;
    starts in train mode (schedulefree's starts in eval mode and needs ``train()`` first)."""

    _fusedopt_class = _optim.SGDScheduleFree


class AdamWScheduleFree(_ScheduleFree):
    """schedulefree.AdamWScheduleFree (a torch optimizer), stepped by
    :class:`fusedopt.AdamWScheduleFree`; starts in train mode like :class:`SGDScheduleFree`."""

    _fusedopt_class = _optim.AdamWScheduleFree


class Muon(Optimizer):
    """torch.optim.Muon, stepped by :class:`fusedopt.Muon`: 2-D parameters only (give biases,
    embeddings and norms to another optimizer); Newton-Schulz in bfloat16 as torch's, so the
    parameters match torch's to bfloat16 accuracy and the momentum buffers bit for bit on the
    FMA targets (docs/muon.md); ``ns_dtype="float32"`` is accepted too."""

    _fusedopt_class = _optim.Muon
