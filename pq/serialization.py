"""Turn callables and their arguments into what a job row stores, and back.

Arguments and results are stored as JSON so any language can enqueue jobs and read results.
What JSON cannot hold (a datetime, a set, an arbitrary object, a dict with non-string keys) is
pickled and stored in its place as ``{"$pickle": "<base64>"}``; a tuple is stored as a list.
Only Python workers can read pickled values, and unpickling runs code: whoever can write the
job table can already make workers run any function, so the table must be trusted.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import math
import pickle
import re
import sys
from collections.abc import Callable
from typing import Any

PICKLE_TAG = "$pickle"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$", re.ASCII)


def to_json(value: Any) -> Any:
    """Return ``value`` as a JSON-compatible structure, pickling the parts JSON cannot hold."""
    kind = type(value)
    if value is None or kind in (bool, int):
        return value
    if kind is str:
        return value if "\x00" not in value else _pickled(value)
    if kind is float:
        return value if math.isfinite(value) else _pickled(value)
    if kind in (list, tuple):
        return [to_json(item) for item in value]
    if kind is dict and PICKLE_TAG not in value and all(type(k) is str for k in value):
        return {key: to_json(item) for key, item in value.items()}
    return _pickled(value)


def from_json(value: Any) -> Any:
    """Return the Python value of a structure made by :func:`to_json`."""
    if isinstance(value, list):
        return [from_json(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and PICKLE_TAG in value:
            return pickle.loads(base64.b64decode(value[PICKLE_TAG]))
        return {key: from_json(item) for key, item in value.items()}
    return value


def _pickled(value: Any) -> dict[str, str]:
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ValueError(
            f"{value!r} can be stored neither as JSON nor with pickle ({exc}); "
            "pass plain values (str, int, float, bool, None, list, dict) or picklable objects"
        ) from exc
    return {PICKLE_TAG: base64.b64encode(data).decode("ascii")}


def callable_path(func: Callable[..., Any] | str) -> tuple[str, object | None]:
    """Return ``(func, instance)`` naming ``func`` so that a worker can import it.

    ``func`` is a dotted path; ``instance`` is the object whose method ``func`` names when
    ``func`` is a bound instance method, else None. Raises ValueError for a callable that
    another process cannot import: a lambda, a nested function, anything from ``__main__``
    or an interactive shell, or a function its module no longer holds under its name. A
    string must be a dotted path ``module.function``; whether it imports is the worker's
    business (the enqueuer need not import what only workers run).
    """
    if isinstance(func, str):
        if not _DOTTED.match(func) or "." not in func:
            raise ValueError(
                f"{func!r} is not a dotted path to a function; name it by its import path, "
                "e.g. 'myapp.tasks.send_mail'"
            )
        return func, None
    if inspect.ismethod(func) and not inspect.isclass(func.__self__):
        owner = func.__self__
        cls = type(owner)
        if cls.__module__ == "__main__":
            raise ValueError(
                f"cannot enqueue {func.__qualname__}: its class is defined in __main__, which "
                "workers cannot import; move the class into a module"
            )
        _refuse_local(cls.__qualname__, func)
        _check_importable(cls.__module__, cls.__qualname__, f"{func.__qualname__}'s class")
        return func.__name__, owner
    qualname = getattr(func, "__qualname__", None)
    if qualname is None or not hasattr(func, "__module__"):
        if callable(func) and not inspect.isroutine(func):
            return callable_path(func.__call__)  # a callable object: enqueue its __call__
        raise ValueError(f"cannot enqueue {func!r}: it is not a function or a dotted path")
    _refuse_local(qualname, func)
    _check_importable(func.__module__, qualname, qualname)
    return f"{func.__module__}.{qualname}", None


def _check_importable(module: str | None, qualname: str, what: str) -> None:
    """Raise ValueError unless ``module`` imports and holds something at ``qualname``.

    That is how a worker finds a job's function. A function typed into an interactive shell
    belongs to no module; one piped into ``manage.py shell`` claims the shell command's
    module, which does not hold it: a worker could find neither. (What the module holds is
    not compared with the function: a test may have patched it, and the worker runs
    whatever the path names, as for a dotted path given as a string.)
    """
    if module is None:
        raise ValueError(
            f"cannot enqueue {what}: it was defined in an interactive shell and belongs to no "
            "module, so workers cannot import it; define it in a module of your project "
            "(e.g. myapp/tasks.py) and import it from there"
        )
    if module == "__main__":
        raise ValueError(
            f"cannot enqueue {what}: it is defined in __main__, which workers cannot "
            "import; move it into a module"
        )
    try:
        found: Any = sys.modules.get(module) or importlib.import_module(module)
        for attr in qualname.split("."):
            found = getattr(found, attr)
    except Exception:
        raise ValueError(
            f"cannot enqueue {what}: workers would import it as {module}.{qualname}, which "
            "does not exist (was it defined in `manage.py shell`?); define it in a module of "
            "your project and import it from there"
        ) from None


def _refuse_local(qualname: str, func: object) -> None:
    if "<lambda>" in qualname:
        raise ValueError(
            f"cannot enqueue {func!r}: lambdas have no import path a worker could use; "
            "define a module-level function instead"
        )
    if "<locals>" in qualname:
        raise ValueError(
            f"cannot enqueue {qualname}: it is defined inside a function, so workers cannot "
            "import it; define it at module level"
        )


def import_callable(path: str) -> Callable[..., Any]:
    """Import the callable named by ``path``: 'pkg.module.func' or 'pkg.module.Class.method'."""
    if not _DOTTED.match(path) or "." not in path:
        raise ImportError(f"{path!r} is not a dotted path to a function")
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            target: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue
            raise
        for attr in parts[split:]:
            try:
                target = getattr(target, attr)
            except AttributeError:
                raise ImportError(
                    f"cannot import {path}: {target!r} has no attribute {attr!r}"
                ) from None
        return target
    raise ImportError(f"cannot import {path}: no module {parts[0]!r}")


def describe(func: str, args: list[Any], kwargs: dict[str, Any], instance: object = None) -> str:
    """Return a call as a log line shows it: ``say_hello('You', n=1)``."""
    name = func.rsplit(".", 1)[-1] if instance is None else f"{type(instance).__name__}.{func}"
    shown = [repr(arg) for arg in args] + [f"{key}={value!r}" for key, value in kwargs.items()]
    text = f"{name}({', '.join(shown)})"
    return text if len(text) <= 500 else text[:497] + "..."
