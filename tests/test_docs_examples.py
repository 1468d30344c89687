"""The Python examples of README.md and docs/*.md run as written.

A page's ```python blocks run in order in one namespace (a later block may use what an earlier
one defined), in a temporary directory, as a reader would paste them. Where a page shows a piece
of a training loop (it uses `params`, `grads`, `batches`, a torch `model` ...), PRELUDES supplies
those names with small stand-ins, so what is checked is the page's own calls: the names,
arguments and results of fusedopt's API.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from fusedopt.distributed import _comm

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NEEDS_TORCH = {"torch.md", "parity.md"}

PRELUDES = {
    "compressed_state.md": """
        import numpy as np
        import fusedopt
        params = {"W": np.zeros((64, 32), np.float32), "b": np.zeros(32, np.float32)}
    """,
    "distributed.md": """
        import numpy as np
        import fusedopt as fo
        from fusedopt.distributed import ShardedOptimizer
        opt = ShardedOptimizer(fo.AdamW([np.zeros(100, np.float32)], lr=1e-3))
        opt.step([np.ones(100, np.float32)])
    """,
    "lbfgs.md": """
        import numpy as np
        rng = np.random.default_rng(0)
        X = rng.standard_normal((64, 7))
        y = np.sign(X @ rng.standard_normal(7) + 0.1)
    """,
    "muon.md": """
        import numpy as np
        import fusedopt
        rng = np.random.default_rng(0)
        shapes = {"embed": (50, 16), "W1": (32, 16), "b1": (32,), "W2": (10, 32), "b2": (10,)}
        params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    """,
    "parity.md": """
        import numpy as np
        import torch
        import fusedopt
        w = np.ones((4, 3), np.float32)
        fo_opt = fusedopt.AdamW([w], lr=1e-3)
        fo_opt.step([np.full((4, 3), 0.5, np.float32)])
        tw = torch.nn.Parameter(torch.ones(4, 3))
        torch_opt = torch.optim.AdamW([tw], lr=1e-3)
        tw.grad = torch.full((4, 3), 0.5)
        torch_opt.step()
    """,
    "torch.md": """
        import torch
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        loss_fn = torch.nn.CrossEntropyLoss()
        batches = [(torch.randn(4, 8), torch.randint(0, 2, (4,))) for _ in range(3)]
    """,
    "tutorial.md": """
        import numpy as np
        rng = np.random.default_rng(0)
        # (the learning-rate schedule's loop)
        params = [np.zeros(8)]
        batches = range(3)
        def grads(batch):
            return [np.full(8, 0.1)]
        # (the MLP's forward and backward pass; its W1 and W2 come from the init example)
        n = 32
        X = rng.standard_normal((n, 64)).astype(np.float32)
        y = rng.integers(0, 10, n)
        b1, b2 = np.zeros(64, np.float32), np.zeros(10, np.float32)
        def softmax(z):
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        def onehot(labels):
            return np.eye(10, dtype=np.float32)[labels]
        # (its training loop)
        epochs = 2
        X_train, y_train = X, y
        def minibatches(size):
            return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]
        def loss_and_grads(params, xb, yb):
            return 0.0, {k: np.full_like(v, 0.01) for k, v in params.items()}
    """,
    "wrappers.md": """
        import numpy as np
        import fusedopt as fo
        rng = np.random.default_rng(0)
        params = {"w": np.zeros(8, np.float32), "b": np.zeros(1, np.float32)}
        batches = [(rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal(4).astype(np.float32))
                   for _ in range(3)]
        def grads(params, x, y):
            r = x @ params["w"] + params["b"] - y
            return {"w": x.T @ r / len(y), "b": np.array([r.mean()], np.float32)}
        epochs, swa_start = 3, 1
        def evaluate(p):
            return p
    """,
}


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.S | re.M)


EXAMPLE_PAGES = [p for p in PAGES if python_blocks(p)]


def test_the_pages_are_found() -> None:
    names = {p.name for p in EXAMPLE_PAGES}
    assert {"README.md", "tutorial.md", "schedules.md"} <= names
    assert set(PRELUDES) <= names, "a prelude for a page that has no examples (renamed?)"


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=lambda p: p.name)
def test_page_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if page.name in NEEDS_TORCH:
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)  # (examples save checkpoints and plots)
    monkeypatch.setattr(_comm, "_world", lambda: None)  # a world of one process: MPI is not started here
    namespace: dict[str, object] = {"__name__": "docs_example"}  # (an example's `if __name__ == "__main__"` stays off)
    prelude = PRELUDES.get(page.name, "")
    exec(compile(textwrap.dedent(prelude), f"{page.name} (prelude)", "exec"), namespace)
    for i, block in enumerate(python_blocks(page)):
        exec(compile(block, f"{page.name}, example {i + 1}", "exec"), namespace)
