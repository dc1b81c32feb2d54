"""The task interface: what one benchmark family module provides.

Adding a task = one new module in ``tasks/``::

    @register_task
    class MyTask(Task):
        '''One line for `internvl-bench list`.'''
        name = "my_task"           # registry key, also the record's ``task``
        version = "1"              # bump when the protocol changes numbers
        table = "A"                # paper table it feeds (or None)

        @dataclass
        class Options:             # every protocol choice, paper setting as default
            languages: str = field(default="en,es", metadata={"help": "comma-separated"})

        def variants(self) -> list[str]: ...
        def evaluate(self, variant: str, ctx: RunContext) -> TaskResult: ...

The CLI turns ``Options`` fields into ``--flags`` (``languages`` -> ``--languages``); the runner records
``asdict(options)`` in every result. ``ctx`` (``internvl_bench.runner.RunContext``) gives the model,
the run settings, and cached, batched, data-parallel engines: ``ctx.encode_images`` / ``ctx.encode_texts``
for contrastive models, ``ctx.generate(requests)`` for chat models (set ``model_kind = "chat"``; see
``internvl_bench/generation.py``). A chat task returns ``TaskResult(predictions=[answer.prediction(...)])``
and the runner writes them beside the record as ``<record stem>.predictions.jsonl``.

Confidence intervals: a task keeps its metrics per scored unit (a query's rank, a question's score) and
returns ``TaskResult(intervals=ctx.intervals(n_units, statistic))``, where ``statistic`` recomputes the
metrics on a batch of resampled unit indices (``internvl_bench.bootstrap``); the runner stores them in
the record's ``intervals`` and the bootstrap settings in its ``options``.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from internvl_bench.errors import BenchError
from internvl_bench.registry import Registry

if TYPE_CHECKING:
    from internvl_bench.runner import RunContext

TASKS: Registry[Any] = Registry("task", "tasks", "internvl_bench.tasks")


@dataclass
class TaskResult:
    """What a task computed for one variant; the runner wraps it into a ``ResultRecord``."""

    metrics: dict[str, float]
    #: number of scored items (queries, images, questions) -- recorded as ``n_samples``
    n_samples: int
    #: annotation / index files read, path -> sha256 (recorded in provenance)
    data_files: dict[str, str] = field(default_factory=dict)
    #: facts of this variant's run that are not options: skipped items, effective sizes, ...
    details: dict[str, Any] = field(default_factory=dict)
    #: per-item rows (id, prompt, raw_output, token_ids, min_margin, parsed, target, score) of chat tasks
    predictions: list[dict[str, Any]] | None = None
    #: other files written beside the record as ``<record stem>.<name>`` (JSON), e.g. an EvalAI submission
    artifacts: dict[str, Any] = field(default_factory=dict)
    #: metric -> (low, high) from ``ctx.intervals`` (the run's bootstrap; empty when it is off)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


class Task(ABC):
    """One benchmark family; a variant is one dataset / language / frame count of it."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    table: ClassVar[str | None] = None
    #: the models this task evaluates: "contrastive" (embeddings) or "chat" (generations)
    model_kind: ClassVar[str] = "contrastive"
    #: the metrics a one-line summary shows (all when empty)
    headline_metrics: ClassVar[tuple[str, ...]] = ()

    @dataclass
    class Options:
        """Protocol options; subclasses replace this with their own dataclass."""

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    @abstractmethod
    def variants(self) -> list[str]:
        """The variants this run evaluates, given ``self.options``."""

    @abstractmethod
    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        """Score ``ctx.model`` on one variant."""

    @classmethod
    def prepare(cls, data_root: Path, download: bool) -> str:
        """Download / verify data under ``data_root``; returns a report. Default: not supported."""
        raise BenchError(f"task '{cls.name}' has no 'prepare' step; see its module docstring for the layout")

    @classmethod
    def options_from_mapping(cls, values: dict[str, Any]) -> Any:
        """Build ``Options`` from a mapping, ignoring keys that are not options of this task."""
        names = {f.name for f in dataclasses.fields(cls.Options)}
        return cls.Options(**{k: v for k, v in values.items() if k in names and v is not None})


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register a ``Task`` subclass under its ``name``."""
    return TASKS.register(cls.name)(cls)


def split_list(value: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c'] for comma-separated options."""
    return [item.strip() for item in value.split(",") if item.strip()]
