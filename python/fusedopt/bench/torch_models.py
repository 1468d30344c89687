"""fusedopt.torch.AdamW against torch.optim.AdamW (fused=True, and the for-loop foreach=False) on
CPU torch models: ``python -m fusedopt.bench.torch_models [--quick]``.

One step of each, gradients in place (as after backward), the three taking turns sample by
sample (timing.measure), at 1 thread and at the default thread count (both libraries set
alike). fusedopt.torch's time includes its per-step plumbing (a view of every gradient, the
storage and hyperparameter checks).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from .timing import Contender, measure

MODELS = ("200 small tensors", "wide MLP")


def _model(kind: str) -> Any:
    import torch

    torch.manual_seed(0)
    if kind == "200 small tensors":  # 100 Linear(64, 64): 200 tensors, 416K parameters
        return torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(100)])
    return torch.nn.Sequential(torch.nn.Linear(2048, 2048), torch.nn.Linear(2048, 2048))  # 8.4M


def _contenders(kind: str, threads: Callable[[], Any]) -> list[Contender]:
    import torch

    import fusedopt.torch

    out = []
    for name, make in (
        ("fusedopt.torch", lambda ps: fusedopt.torch.AdamW(ps, lr=1e-3)),
        ("torch fused=True", lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True)),
        ("torch foreach=False", lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=False)),
    ):
        model = _model(kind)
        params = list(model.parameters())
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        opt = make(params)
        out.append(Contender(name, opt.step, enter=threads, keep=(model, opt)))
    return out


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Rows {model, params, tensors, threads, name: seconds per step (median)}."""
    import torch

    import fusedopt

    default = (torch.get_num_threads(), fusedopt.get_num_threads())

    def one() -> None:
        torch.set_num_threads(1)
        fusedopt.set_num_threads(1)

    def default_threads() -> None:
        torch.set_num_threads(default[0])
        fusedopt.set_num_threads(default[1])

    rows = []
    try:
        for kind in MODELS:
            model = _model(kind)
            for label, threads in (("1", one), (f"default ({default[1]})", default_threads)):
                stats = measure(_contenders(kind, threads), repeats=3 if quick else 9, min_time=0.1 if quick else 0.3)
                row: dict[str, Any] = {
                    "model": kind,
                    "params": sum(p.numel() for p in model.parameters()),
                    "tensors": len(list(model.parameters())),
                    "threads": label,
                }
                row.update({name: st.median for name, st in stats.items()})
                row["others_cores"] = next(iter(stats.values())).others
                rows.append(row)
    finally:
        default_threads()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'model':<18} {'threads':<12} {'fusedopt.torch':>15} {'torch fused':>12} {'torch loop':>11} {'vs fused':>9} {'vs loop':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        f, tf, tl = r["fusedopt.torch"], r["torch fused=True"], r["torch foreach=False"]
        lines.append(
            f"{r['model']:<18} {r['threads']:<12} {f * 1e6:>12.0f} us {tf * 1e6:>9.0f} us {tl * 1e6:>8.0f} us"
            f" {tf / f:>8.2f}x {tl / f:>7.2f}x"
        )
    busy = max(r["others_cores"] for r in rows)
    lines.append(f"(AdamW step, medians of interleaved samples; other processes used up to {busy:.1f} cores meanwhile)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fusedopt.bench.torch_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    args = parser.parse_args(argv)
    print(table(run(args.quick)))


if __name__ == "__main__":
    main()
