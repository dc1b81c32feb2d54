"""Every registered task and model, tested through the registries (a new entry is tested for free)."""
from __future__ import annotations

import dataclasses

import pytest

from internvl_bench.errors import BenchError
from internvl_bench.registry import describe
from internvl_bench.task import TASKS, Task
from model_zoo import MODELS

TASK_NAMES = TASKS.names()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_task_is_described_and_its_options_have_defaults(name: str) -> None:
    task_cls = TASKS.get(name)
    assert issubclass(task_cls, Task) and task_cls.name == name
    assert dict(describe(TASKS))[name], "a task needs a docstring line for `internvl-bench list`"
    options = task_cls.Options()  # every protocol option has the paper's default
    assert all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING for f in dataclasses.fields(options))
    assert task_cls(options).variants()


@pytest.mark.parametrize("name", MODELS.names())
def test_model_is_described(name: str) -> None:
    assert dict((n.removesuffix(":ARG"), d) for n, d in describe(MODELS))[name]


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(BenchError, match="unknown task 'xdt'. Did you mean xtd"):
        TASKS.get("xdt")
    with pytest.raises(BenchError, match="needs an argument"):
        MODELS.resolve("openclip")
