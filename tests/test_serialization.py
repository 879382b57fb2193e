"""pq.serialization: values to JSON (pickling what JSON cannot hold) and callables to paths."""

from __future__ import annotations

import base64
import datetime
import decimal
import enum
import json
import math
import os.path
import pickle
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pq.serialization import PICKLE_TAG, callable_path, from_json, import_callable, to_json
from tests import jobs


class Colour(enum.IntEnum):
    RED = 1


JSONABLE = [
    None,
    True,
    False,
    0,
    -(2**70),
    1.5,
    "",
    "text ünï \u2603",
    [],
    {},
    [1, "a", None, [2.5, {"b": [True]}]],
    {"a": 1, "nested": {"list": [1, 2], "none": None}},
]

UNJSONABLE = [
    datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    datetime.date(2020, 1, 2),
    datetime.time(12, 30),
    datetime.timedelta(seconds=1.5),
    {1, 2},
    frozenset({"x"}),
    decimal.Decimal("1.10"),
    {1: "int key"},
    {("tuple", "key"): 1},
    {"a": 1, 2: "mixed keys"},
    "NUL \x00 inside",
    b"bytes",
    bytearray(b"ab"),
    float("inf"),
    float("-inf"),
    complex(1, 2),
    Colour.RED,
    jobs.Calculator(2),
    {PICKLE_TAG: "user data"},
    {PICKLE_TAG: "x", "other": 1},
]


def equal(value: object, expected: object) -> bool:
    if isinstance(expected, jobs.Calculator):
        return type(value) is jobs.Calculator and value.denominator == expected.denominator
    return type(value) is type(expected) and value == expected


# to_json / from_json


@pytest.mark.parametrize("value", JSONABLE, ids=repr)
def test_jsonable_values_are_stored_as_they_are(value: object) -> None:
    encoded = to_json(value)
    assert encoded == value
    assert json.loads(json.dumps(encoded)) == value
    assert equal(from_json(json.loads(json.dumps(encoded))), value)


@pytest.mark.parametrize("value", UNJSONABLE, ids=repr)
def test_unjsonable_values_are_pickled_and_read_back(value: object) -> None:
    encoded = to_json(value)
    assert set(encoded) == {PICKLE_TAG}
    text = json.dumps(encoded, allow_nan=False)  # plain, strict JSON
    assert "\\u0000" not in text
    assert equal(from_json(json.loads(text)), value)


def test_nan_round_trips() -> None:
    encoded = to_json(float("nan"))
    assert set(encoded) == {PICKLE_TAG}
    assert math.isnan(from_json(json.loads(json.dumps(encoded))))


def test_pickle_tag_holds_base64_of_a_pickle() -> None:
    value = datetime.date(2020, 1, 2)
    encoded = to_json(value)
    assert PICKLE_TAG == "$pickle"
    assert pickle.loads(base64.b64decode(encoded["$pickle"])) == value


def test_a_tuple_becomes_a_list() -> None:
    assert to_json((1, (2, 3))) == [1, [2, 3]]
    assert from_json(to_json((1, (2, 3)))) == [1, [2, 3]]


def test_only_the_unjsonable_parts_are_pickled() -> None:
    when = datetime.date(2020, 1, 2)
    encoded = to_json({"when": when, "items": [1, {2}], "name": "x"})
    assert encoded["name"] == "x"
    assert encoded["items"][0] == 1
    assert set(encoded["when"]) == set(encoded["items"][1]) == {PICKLE_TAG}
    assert from_json(json.loads(json.dumps(encoded))) == {
        "when": when,
        "items": [1, {2}],
        "name": "x",
    }


def test_a_user_dict_holding_the_pickle_key_is_not_misread() -> None:
    fake = {PICKLE_TAG: base64.b64encode(pickle.dumps("surprise")).decode()}
    assert from_json(json.loads(json.dumps(to_json(fake)))) == fake
    nested = {"outer": [fake]}
    assert from_json(json.loads(json.dumps(to_json(nested)))) == nested


def test_json_written_by_others_with_the_pickle_key_and_more_is_a_dict() -> None:
    assert from_json({PICKLE_TAG: "x", "y": 1}) == {PICKLE_TAG: "x", "y": 1}


def test_subclasses_of_json_types_are_pickled_to_keep_their_type() -> None:
    class Name(str):
        pass

    assert equal(from_json(to_json(Colour.RED)), Colour.RED)
    with pytest.raises(ValueError, match="pickle"):
        to_json(Name("local classes cannot be pickled"))


@pytest.mark.parametrize(
    "value",
    [threading.Lock(), lambda: 1, (x for x in ()), {"key": [threading.Lock()]}],
    ids=["lock", "lambda", "generator", "nested lock"],
)
def test_an_unpicklable_value_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        to_json(value)
    message = str(caught.value)
    assert "can be stored neither as JSON nor with pickle" in message
    assert "pass plain values" in message
    assert caught.value.__cause__ is not None


# callable_path


def test_path_of_a_function() -> None:
    assert callable_path(jobs.say_hello) == ("tests.jobs.say_hello", None)
    assert import_callable("tests.jobs.say_hello") is jobs.say_hello


def test_path_of_a_decorated_function() -> None:
    assert callable_path(jobs.decorated_hello) == ("tests.jobs.decorated_hello", None)
    assert import_callable("tests.jobs.decorated_hello") is jobs.decorated_hello


def test_path_of_a_classmethod() -> None:
    path, instance = callable_path(jobs.MathOps.double)
    assert (path, instance) == ("tests.jobs.MathOps.double", None)
    assert import_callable(path)(4) == 8


def test_path_of_a_classmethod_reached_through_an_instance() -> None:
    path, instance = callable_path(jobs.MathOps().double)
    assert (path, instance) == ("tests.jobs.MathOps.double", None)


def test_path_of_a_staticmethod() -> None:
    path, instance = callable_path(jobs.MathOps.triple)
    assert (path, instance) == ("tests.jobs.MathOps.triple", None)
    assert import_callable(path)(2) == 6


def test_path_of_an_instance_method() -> None:
    calc = jobs.Calculator(2)
    name, instance = callable_path(calc.calculate)
    assert name == "calculate"
    assert instance is calc
    assert getattr(pickle.loads(pickle.dumps(instance)), name)(4, 5) == 10


def test_path_of_a_callable_object() -> None:
    triple = jobs.Multiplier(3)
    name, instance = callable_path(triple)
    assert name == "__call__"
    assert instance is triple
    assert getattr(pickle.loads(pickle.dumps(instance)), name)(2) == 6


@pytest.mark.parametrize(
    ("func", "path"),
    [(len, "builtins.len"), (math.sqrt, "math.sqrt"), (os.path.join, os.path.join.__module__)],
    ids=["len", "math.sqrt", "os.path.join"],
)
def test_path_of_builtins_and_library_functions(func: object, path: str) -> None:
    found, instance = callable_path(func)
    assert instance is None
    assert found.startswith(path)
    assert import_callable(found) is func


def test_path_of_a_dotted_string_is_itself() -> None:
    assert callable_path("myapp.tasks.send_mail") == ("myapp.tasks.send_mail", None)


@pytest.mark.parametrize(
    "path", ["send_mail", "", "myapp.", ".myapp.x", "my app.x", "myapp..x", "myapp.1x", "é.x"]
)
def test_a_string_that_is_no_dotted_path_is_a_value_error(path: str) -> None:
    with pytest.raises(ValueError, match="not a dotted path"):
        callable_path(path)


def test_lambda_nested_function_and_local_class_are_refused() -> None:
    def nested() -> None:
        pass

    class Local:
        def method(self) -> None:
            pass

        def __call__(self) -> None:
            pass

    with pytest.raises(ValueError, match="lambdas have no import path"):
        callable_path(lambda: None)
    with pytest.raises(ValueError, match="defined inside a function"):
        callable_path(nested)
    with pytest.raises(ValueError, match="defined inside a function"):
        callable_path(Local().method)
    with pytest.raises(ValueError, match="defined inside a function"):
        callable_path(Local())


def test_a_function_from_main_is_refused() -> None:
    def task() -> None:
        pass

    task.__module__ = "__main__"
    task.__qualname__ = "task"
    with pytest.raises(ValueError, match="__main__"):
        callable_path(task)


@pytest.mark.parametrize("value", [42, None, object()], ids=["int", "None", "object"])
def test_something_that_is_not_a_function_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        callable_path(value)  # type: ignore[arg-type]


# import_callable


def test_import_callable_reaches_methods_of_classes() -> None:
    assert import_callable("tests.jobs.Calculator.calculate") is jobs.Calculator.calculate


def test_import_callable_of_a_missing_top_level_module() -> None:
    with pytest.raises(ImportError, match="no module 'no_such_pq_module'"):
        import_callable("no_such_pq_module.func")


def test_import_callable_of_a_missing_submodule() -> None:
    with pytest.raises(ImportError, match="no_such_submodule"):
        import_callable("tests.no_such_submodule.func")


def test_import_callable_of_a_missing_attribute() -> None:
    with pytest.raises(ImportError, match="no attribute 'no_such_function'") as caught:
        import_callable("tests.jobs.no_such_function")
    assert "tests.jobs.no_such_function" in str(caught.value)


def test_import_callable_of_a_missing_class_attribute() -> None:
    with pytest.raises(ImportError, match="no attribute 'nope'"):
        import_callable("tests.jobs.Calculator.nope")


@pytest.mark.parametrize("path", ["say_hello", "tests.jobs.", "tests/jobs.say_hello"])
def test_import_callable_of_a_bad_path(path: str) -> None:
    with pytest.raises(ImportError, match="not a dotted path"):
        import_callable(path)


@pytest.fixture
def broken_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package on sys.path whose modules fail on import in several ways."""
    package = tmp_path / "pq_broken_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "missing_dep.py").write_text(
        "import pq_no_such_dependency\n\ndef func():\n    return 1\n"
    )
    (package / "bad_name.py").write_text(
        "from os import pq_no_such_name\n\ndef func():\n    return 1\n"
    )
    (package / "raises.py").write_text("raise ImportError('raised by the module itself')\n")
    (package / "missing_sibling.py").write_text("from pq_broken_pkg import nothing_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "pq_broken_pkg"
    for name in list(sys.modules):
        if name.startswith("pq_broken_pkg"):
            del sys.modules[name]


def test_module_not_found_inside_the_target_module_propagates(broken_package: str) -> None:
    with pytest.raises(ModuleNotFoundError) as caught:
        import_callable(f"{broken_package}.missing_dep.func")
    assert caught.value.name == "pq_no_such_dependency"


@pytest.mark.parametrize(
    ("module", "error"),
    [
        ("bad_name", "pq_no_such_name"),
        ("raises", "raised by the module itself"),
        ("missing_sibling", "nothing_here"),
    ],
)
def test_import_error_inside_the_target_module_propagates(
    broken_package: str, module: str, error: str
) -> None:
    with pytest.raises(ImportError, match=error) as caught:
        import_callable(f"{broken_package}.{module}.func")
    assert "cannot import pq_broken_pkg" not in str(caught.value)


def test_a_function_typed_into_an_interactive_shell_is_refused() -> None:
    namespace: dict[str, object] = {}  # as code.interact() runs what is typed: no __name__
    exec("def typed():\n    return 1\n", namespace)
    with pytest.raises(
        ValueError, match="defined in an interactive shell and belongs to no module"
    ):
        callable_path(namespace["typed"])  # type: ignore[arg-type]


def test_a_function_its_module_does_not_hold_is_refused() -> None:
    namespace: dict[str, object] = {"__name__": "tests.jobs"}  # claims a module, not in it
    exec("def stray():\n    return 1\n", namespace)
    with pytest.raises(
        ValueError, match=r"workers would import it as tests\.jobs\.stray, which does not exist"
    ):
        callable_path(namespace["stray"])  # type: ignore[arg-type]


def test_an_instance_of_a_class_its_module_does_not_hold_is_refused() -> None:
    namespace: dict[str, object] = {"__name__": "tests.jobs"}
    exec("class Stray:\n    def run(self):\n        return 1\n", namespace)
    instance = namespace["Stray"]()  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"Stray\.run's class: workers would import it as"):
        callable_path(instance.run)
