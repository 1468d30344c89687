import re
def edit(p, a, b, cnt=1):
    s=open(p).read()
    assert s.count(a)==cnt, (p, a[:60], s.count(a))
    s=s.replace(a,b); open(p,'w').write(s)
W='/work/wt-adafactor/'
# golden format: state arrays of other shapes than their parameter (Adafactor's row_var, col_var)
edit(W+'tests/parity/cases.py', '''# Scalars kept in optimizer state (torch keeps them as 0-d float32 tensors,
# fusedopt as Python numbers).  Every other state entry is an array with the
# parameter's shape and dtype.''', '''# Scalars kept in optimizer state (torch keeps them as 0-d float32 tensors,
# fusedopt as Python numbers).  Every other state entry is an array of the
# parameter's dtype, shaped like it (or, as Adafactor's row_var and col_var,
# of fewer elements: stored at the start of the parameter's span, shapes in
# ``<id>.shape.<name>``).''')
edit(W+'tests/parity/cases.py', '''OPTIMIZERS = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam")''',
     '''OPTIMIZERS = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adafactor")''')
edit(W+'tests/parity/cases.py', '''        ("param groups", {"lr": 0.01}, {"upstream": False, "groups": _GROUPS(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, decoupled_weight_decay=True)}),
    ],
}''', '''        ("param groups", {"lr": 0.01}, {"upstream": False, "groups": _GROUPS(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, decoupled_weight_decay=True)}),
    ],
    "Adafactor": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 0.05}, {}),
        ("beta2_decay", {"beta2_decay": -0.5}, {}),
        ("eps", {"eps": (1e-3, 1e-2)}, {}),
        ("d weight_decay", {"d": 1.5, "weight_decay": 0.1}, {}),
        ("maximize weight_decay", {"weight_decay": 0.1, "maximize": True}, {}),
        ("param groups", {"lr": 0.02}, {"upstream": False, "groups": _GROUPS(lr=0.05, d=2.0, weight_decay=0.1)}),
        ("max_grad_norm", {"lr": 0.05}, {"upstream": False, "clip": {"max_grad_norm": 1.0}}),
    ],
}''')
edit(W+'tests/parity/cases.py', '''    arrays = {k: np.full((n, TOTAL), np.nan, dtype=dt) for k in names}
    present = {k: np.zeros((n, N_PARAMS), dtype=bool) for k in names}''', '''    arrays = {k: np.full((n, TOTAL), np.nan, dtype=dt) for k in names}
    present = {k: np.zeros((n, N_PARAMS), dtype=bool) for k in names}
    shapes: dict[str, list] = {k: [None] * N_PARAMS for k in names}''')
edit(W+'tests/parity/cases.py', '''                if k in st:
                    present[k][r, i] = True
                    arrays[k][r, OFFSETS[i] : OFFSETS[i + 1]] = np.asarray(st[k]).reshape(-1)''', '''                if k in st:
                    present[k][r, i] = True
                    flat = np.asarray(st[k]).reshape(-1)
                    arrays[k][r, OFFSETS[i] : OFFSETS[i] + flat.size] = flat
                    shapes[k][i] = list(np.shape(st[k]))''')
edit(W+'tests/parity/cases.py', '''    for k, a in arrays.items():
        out[f"{p}.s.{k}"] = a
        out[f"{p}.m.{k}"] = present[k]
    return out''', '''    for k, a in arrays.items():
        out[f"{p}.s.{k}"] = a
        out[f"{p}.m.{k}"] = present[k]
        if any(s is not None and tuple(s) != SHAPES[i] for i, s in enumerate(shapes[k])):
            out[f"{p}.shape.{k}"] = np.array(json.dumps(shapes[k]))
    return out''')
edit(W+'tests/parity/cases.py', '''    arrays = {k: data[prefix + k] for k in names}
    present = {k: data[f"{p}.m.{k}"] for k in names}''', '''    arrays = {k: data[prefix + k] for k in names}
    present = {k: data[f"{p}.m.{k}"] for k in names}
    shapes = {k: json.loads(str(data[f"{p}.shape.{k}"])) if f"{p}.shape.{k}" in data else list(SHAPES) for k in names}''')
edit(W+'tests/parity/cases.py', '''                if present[k][r, i]:
                    d[k] = arrays[k][r, OFFSETS[i] : OFFSETS[i + 1]].reshape(SHAPES[i]).copy()''', '''                if present[k][r, i]:
                    shape = tuple(shapes[k][i])
                    size = int(np.prod(shape, dtype=np.int64))
                    d[k] = arrays[k][r, OFFSETS[i] : OFFSETS[i] + size].reshape(shape).copy()''')

# conftest / parity matrix
edit(W+'tests/conftest.py', '''OPTIMIZERS.update({name: getattr(fusedopt, name) for name in ("Lamb",)})''',
     '''OPTIMIZERS.update({name: getattr(fusedopt, name) for name in ("Lamb", "Adafactor")})''')
edit(W+'tests/conftest.py', '''    "Lamb": {"lr": 1e-3, "weight_decay": 0.05, "weight_decouple": False, "maximize": True},
}''', '''    "Lamb": {"lr": 1e-3, "weight_decay": 0.05, "weight_decouple": False, "maximize": True},
    "Adafactor": {"lr": 1e-3, "beta2_decay": -0.5, "eps": (1e-3, 1e-3), "d": 1.5, "weight_decay": 0.05, "maximize": True},
}''')
edit(W+'tests/test_core_parity.py', '''FUSED_OPS.update({"Lamb": 5})''', '''#   Adafactor 3  var = lerp(var, g*g); p += coef*u (u = g/sqrt(var): rounding only), and the
#             coefficient from RMS(u)
FUSED_OPS.update({"Lamb": 5, "Adafactor": 3})''')
edit(W+'tests/test_core_parity.py', '''              {"adam": True, "weight_decay": 0.05, "grad_averaging": True, "adam_debias": False}):
        cases.append(("Lamb", dict(lr=1e-3, **c)))''', '''              {"adam": True, "weight_decay": 0.05, "grad_averaging": True, "adam_debias": False}):
        cases.append(("Lamb", dict(lr=1e-3, **c)))
    for c in _grid(weight_decay=(0.0, 0.05), maximize=(False, True), beta2_decay=(-0.8, -0.5)):
        cases.append(("Adafactor", dict(lr=1e-3, **c)))
    for c in ({"eps": (None, 1e-3), "d": 1.0}, {"eps": (1e-3, 1e-2), "d": 1.5}):
        cases.append(("Adafactor", dict(lr=1e-3, **c)))''')
edit(W+'tests/test_core_parity.py', '''"max_weight_norm": "maxwn"}''', '''"max_weight_norm": "maxwn", "beta2_decay": "b2d"}''')
