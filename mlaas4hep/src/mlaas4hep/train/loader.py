"""Getting a model: a user file defining `model(idim)` / `model()`, loaded by path, or a
built-in; the framework is read off the returned object and the matching adapter wraps it.

Loading a model file runs the user's code; the workflow runs as its own process (and, behind the
server, in a job process or container), never inside a service.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from mlaas4hep.errors import FrameworkMissing, ModelError, did_you_mean
from mlaas4hep.reader.source import load_xrootd_client
from mlaas4hep.train.adapters.base import ModelAdapter
from mlaas4hep.train.builtins import BUILTINS
from mlaas4hep.train.tasks import Task

BUILTIN_PREFIX = "builtin:"


def load_model(spec: str, idim: int, task: Task) -> tuple[ModelAdapter, str]:
    """The adapter for `spec` (a path or builtin:NAME) and a one-line description."""
    load_xrootd_client()  # before the model's TensorFlow, which it cannot follow
    if spec.startswith(BUILTIN_PREFIX):
        name = spec.removeprefix(BUILTIN_PREFIX)
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise ModelError(
                f"no built-in model '{name}'{did_you_mean(name, BUILTINS)}; "
                f"available: {', '.join(BUILTINS)}"
            )
        try:
            model = builtin.build(idim, task)
        except ModuleNotFoundError as exc:
            raise FrameworkMissing(exc.name or builtin.framework, spec) from None
        return wrap(model, task, idim, None, spec), f"{spec}: {builtin.description}"
    path = Path(spec)
    module = load_module(path)
    factory = getattr(module, "model", None)
    if factory is None:
        defined = [
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
        ]
        raise ModelError(
            f"{path}: defines no function 'model'{did_you_mean('model', defined)}; "
            "write def model(idim): ... return <model> (Keras, PyTorch) or def model(): ... "
            "(scikit-learn, XGBoost)"
        )
    if not callable(factory):
        raise ModelError(f"{path}: 'model' must be a function, not {type(factory).__name__}")
    model = call_factory(factory, idim, path)
    hook = getattr(module, "train_clf", None)
    adapter = wrap(model, task, idim, hook if callable(hook) else None, str(path))
    return adapter, f"{path}: {adapter.describe()}"


def load_module(path: Path) -> ModuleType:
    if not path.is_file():
        raise ModelError(f"model file not found: {path} (or use --model builtin:NAME)")
    source = path.read_text()
    try:
        compile(source, str(path), "exec")  # syntax check only; nothing runs here
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        raise ModelError(
            f"{path}, line {exc.lineno}: syntax error: {exc.msg}"
            + (f"\n    {line}" if line else "")
        ) from None
    name = "mlaas4hep_user_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        raise FrameworkMissing(exc.name or "?", str(path)) from None
    except Exception as exc:
        raise ModelError(f"{path}: importing it failed: {_where(exc, path)}") from None
    return module


def call_factory(factory: Any, idim: int, path: Path) -> Any:
    """model(idim) when it takes an argument, model() otherwise (as the original did)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        parameters = []
    required = [
        p
        for p in parameters
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    call = "model(idim)" if required else "model()"
    try:
        model = factory(idim) if required else factory()
    except ModuleNotFoundError as exc:
        raise FrameworkMissing(exc.name or "?", str(path)) from None
    except Exception as exc:
        raise ModelError(f"{path}: {call} raised {_where(exc, path)}") from None
    if model is None:
        raise ModelError(
            f"{path}: {call} returned None; does the function end with 'return <model>'?"
        )
    return model


def framework_of(model: Any) -> str | None:
    modules = [cls.__module__ for cls in type(model).__mro__]
    for prefix, name in (
        ("keras", "keras"),
        ("tensorflow", "keras"),
        ("torch", "torch"),
        ("xgboost", "xgboost"),
        ("sklearn", "sklearn"),
    ):
        if any(m == prefix or m.startswith(prefix + ".") for m in modules):
            return name
    return None


def wrap(model: Any, task: Task, idim: int, hook: Any, source: str) -> ModelAdapter:
    framework = framework_of(model)
    if framework == "keras":
        from mlaas4hep.train.adapters.keras import KerasAdapter

        return KerasAdapter(model, task, idim)
    if framework == "torch":
        from torch import nn

        from mlaas4hep.train.adapters.torch import TorchAdapter

        if not isinstance(model, nn.Module):
            raise ModelError(f"{source}: returned a {type(model).__name__}, not a torch.nn.Module")
        return TorchAdapter(model, task, idim, hook)
    if framework == "xgboost":
        from mlaas4hep.train.adapters.xgboost import XGBoostAdapter

        return XGBoostAdapter(model, task, idim)
    if framework == "sklearn":
        from mlaas4hep.train.adapters.sklearn import SklearnAdapter

        return SklearnAdapter(model, task, idim)
    raise ModelError(
        f"{source}: model returned a {type(model).__module__}.{type(model).__name__}, which is "
        "not a Keras model, a torch.nn.Module, a scikit-learn estimator or an XGBoost model"
    )


def _where(exc: BaseException, path: Path) -> str:
    """'TypeError: ... (line N)' pointing at the user's file where possible."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    line = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
    return f"{type(exc).__name__}: {exc}{line}"
