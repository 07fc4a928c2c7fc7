"""The priors by name: their classes, named sizes and constructor settings, known without importing torch.

Validation and ``--dry-run`` ask here, so that a config mistake is answered in a fraction of a second. The
settings are read from the classes' own source (their ``__init__`` signatures and ``trained_by``), so the
classes stay their one home; ``tests/models/test_catalog.py`` checks the reading against the imported classes.
"""
from __future__ import annotations

import ast
import functools
import inspect
from pathlib import Path

HERE = Path(__file__).parent
CLASSES = {"flowavenet": "flowavenet.FloWaveNet", "wavenet": "wavenet.WaveNet", "flowavenet_nc": "flowavenet.FloWaveNetNC",
           "wavenet_nc": "wavenet.WaveNetNC", "scorenet": "scorenet.ScoreNet"}  # registry name -> module.Class
PRIOR_NAMES = tuple(CLASSES)

# Named sizes. "toy"/"musdb" follow the published study (Frank & Ilse 2020); "small"/"tiny" are for CPU work.
PRESETS: dict[str, dict[str, dict]] = {
    "flowavenet": {
        "toy": dict(blocks=4, flows=6, layers=10, width=32),
        "musdb": dict(blocks=8, flows=6, layers=10, width=48),
        "small": dict(blocks=4, flows=4, layers=6, width=24),
        "tiny": dict(blocks=2, flows=2, layers=3, width=8),
    },
    "wavenet": {
        "toy": dict(stacks=3, layers=10, width=64, kernel_size=2),
        "musdb": dict(stacks=3, layers=10, width=64, kernel_size=2),
        "small": dict(stacks=2, layers=8, width=32, kernel_size=2),
        "tiny": dict(stacks=1, layers=4, width=8, kernel_size=2),
    },
    "scorenet": {  # DiffWave-like non-causal stacks; receptive field 2 047 samples for 10 layers
        "toy": dict(stacks=2, layers=10, width=64),
        "musdb": dict(stacks=3, layers=10, width=64),
        "small": dict(stacks=1, layers=10, width=32),
        "tiny": dict(stacks=1, layers=3, width=8),
    },
}
PRESETS["flowavenet_nc"] = PRESETS["flowavenet"]  # σ-conditional variants come in the same sizes
PRESETS["wavenet_nc"] = PRESETS["wavenet"]


@functools.cache
def _module(name: str) -> ast.Module:
    return ast.parse((HERE / f"{name}.py").read_text(), filename=f"models/{name}.py")


def _class(module: str, name: str) -> tuple[str, ast.ClassDef]:
    """The definition of class ``name`` as seen from ``module``: defined there or imported from a sibling."""
    for node in _module(module).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
    for node in _module(module).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and any(a.name == name for a in node.names):
            return _class(node.module, name)
    raise LookupError(f"models/{module}.py: no class {name}")


def _lineage(name: str):
    """The prior's class, then the base classes it inherits from (first base each time), up to ``Prior``."""
    module, cls = _class(*CLASSES[name].split("."))
    while True:
        yield cls
        bases = [base.id for base in cls.bases if isinstance(base, ast.Name)]
        if not bases or bases[0] not in {"Prior", *(path.split(".")[1] for path in CLASSES.values())}:
            return
        module, cls = _class(module, bases[0])


def _literal(node: ast.expr | None):
    if node is None:
        return inspect.Parameter.empty
    try:
        return ast.literal_eval(node)
    except ValueError:
        return inspect.Parameter.empty  # not a literal: validation then accepts any value of any type


def _init_parameters(cls: ast.ClassDef) -> tuple[list[inspect.Parameter], bool] | None:
    """``(parameters, passes **kwargs on)`` of the class's own ``__init__``; None when it has none."""
    init = next((node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"), None)
    if init is None:
        return None
    args = init.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parameters = [inspect.Parameter(arg.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=_literal(default))
                  for arg, default in zip(positional, defaults) if arg.arg != "self"]
    parameters += [inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY, default=_literal(default))
                   for arg, default in zip(args.kwonlyargs, args.kw_defaults)]
    return parameters, args.kwarg is not None


@functools.cache
def prior_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters the prior ``name`` accepts, following ``**kwargs`` up to the parent classes
    (a σ-conditional variant passes them on to its base architecture)."""
    parameters: dict[str, inspect.Parameter] = {}
    for cls in _lineage(name):
        own = _init_parameters(cls)
        if own is None:
            continue
        for parameter in own[0]:
            parameters.setdefault(parameter.name, parameter)
        if not own[1]:
            break
    return parameters


@functools.cache
def trained_by(name: str) -> str:
    """``likelihood`` or ``denoising`` (score priors): what the prior's training objective computes."""
    for cls in _lineage(name):
        for node in cls.body:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            if isinstance(target, ast.Name) and target.id == "trained_by" and node.value is not None:
                return ast.literal_eval(node.value)
    raise LookupError(f"{name}: no trained_by in its classes")


def prior_settings(name: str, preset: str | None = None, **hparams) -> dict:
    """The keyword arguments a prior is built with: the named preset's, overridden by ``hparams`` (the
    constructor's own defaults fill in the rest; see :func:`prior_parameters`)."""
    if name not in CLASSES:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(CLASSES)}")
    if preset is not None and preset not in PRESETS[name]:
        raise ValueError(f"unknown preset {preset!r} for {name}; choose one of {sorted(PRESETS[name])}")
    return {**(PRESETS[name][preset] if preset is not None else {}), **hparams}


def prior_setting(name: str, preset: str | None, hparams: dict, key: str):
    """One setting of a prior as it will be built: the override, else the preset's, else the default."""
    settings = prior_settings(name, preset, **hparams)
    return settings[key] if key in settings else prior_parameters(name)[key].default
