"""Run one task on one model: variants in turn, cached engines, one record per variant.

``RunContext`` is what a task sees: the model, the run settings, the encoders (contrastive models:
``encode_images`` / ``encode_texts``), the generator (chat models: ``generate``) and ``intervals``, the
run's bootstrap (``--bootstrap-resamples``, ``--bootstrap-seed``; ``{}`` when the count is 0).
``run_task`` checks that task and model are of the same kind before loading anything, builds the
context, evaluates each variant and writes the records -- the task's intervals in ``intervals``, the
bootstrap settings in ``options`` -- and, for tasks that return them, the per-item predictions beside
each record (rank 0 only under torchrun). A variant that fails with a ``BenchError`` stops the run
after the records of earlier variants, every finished embedding chunk and every finished batch of
answers are on disk.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from internvl_bench import distributed
from internvl_bench.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, Statistic, bootstrap_intervals
from internvl_bench.cache import cache_key, default_cache_dir
from internvl_bench.data import ImageSource, file_sha256
from internvl_bench.distributed import DistInfo
from internvl_bench.encoding import Encoder
from internvl_bench.errors import BenchError
from internvl_bench.generation import Answer, GenerationEngine, GenerationRequest
from internvl_bench.provenance import environment
from internvl_bench.records import DEFAULT_RUNS_DIR, ResultRecord, write_artifact, write_predictions, write_record
from internvl_bench.task import TASKS, Task
from model_zoo import load_model, model_kind
from model_zoo.base import PREPROCESS_MODES, ContrastiveModel
from model_zoo.chat import ChatModel

log = logging.getLogger(__name__)
DEFAULT_CACHE_DIR = default_cache_dir()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_precision(device: torch.device) -> str:
    """bf16 on GPUs (the official evals' setting), fp32 on CPU where bf16 matmuls are slow and lossy."""
    return "bf16" if device.type == "cuda" else "fp32"


@dataclass
class RunConfig:
    """Engine settings of a run (task protocol options live in the task's ``Options``)."""

    data_root: Path | None = None
    output_dir: Path = DEFAULT_RUNS_DIR
    cache_dir: Path | None = DEFAULT_CACHE_DIR
    device: torch.device = field(default_factory=default_device)
    precision: str | None = None
    batch_size: int = 64
    workers: int = 2
    progress: bool = True
    rank: int = 0
    world_size: int = 1
    #: model-specific options passed to the factory (``vision_tower``, ``conv_template``, ...)
    model_options: dict[str, Any] = field(default_factory=dict)
    #: re-generate answers whose top-1/top-2 logit margin is below this at batch 1 (None: off)
    verify_batch_invariance: float | None = None
    #: resamples of each record's 95% bootstrap intervals (0: no intervals)
    bootstrap_resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        if self.bootstrap_resamples < 0:
            raise BenchError(f"--bootstrap-resamples {self.bootstrap_resamples}: give 0 (no intervals) or a "
                             "positive count")
        if self.precision is None:
            self.precision = default_precision(self.device)

    def engine(self) -> dict[str, Any]:
        """The settings a run spec records as its ``engine`` (``internvl_bench.experiment``), paths absolute;
        rank and world size come from torchrun and ``progress`` changes no number, so they are left out."""
        def absolute(path: Path | None) -> str | None:
            return None if path is None else str(Path(path).expanduser().resolve())

        return {"device": str(self.device), "precision": self.precision, "batch_size": self.batch_size,
                "workers": self.workers, "cache_dir": absolute(self.cache_dir), "output_dir": absolute(self.output_dir),
                "verify_batch_invariance": self.verify_batch_invariance,
                "bootstrap_resamples": self.bootstrap_resamples, "bootstrap_seed": self.bootstrap_seed}


class RunContext:
    """The model plus cached, batched, data-parallel engines, handed to ``Task.evaluate``."""

    def __init__(self, model: ContrastiveModel | ChatModel, config: RunConfig, dist_info: DistInfo) -> None:
        self.model = model
        self.config = config
        self.dist = dist_info
        self.is_main = dist_info.is_main
        self.model_fingerprint = model.fingerprint()
        # the last image matrix, by cache key: consecutive variants over the same images (XTD's
        # languages, Flickr30K and Flickr30K-CN) encode them once even without a disk cache
        self._last_images: tuple[str, torch.Tensor] | None = None
        self._encoder_instance: Encoder | None = None
        self._generator_instance: GenerationEngine | None = None
        #: engine facts of the variant being evaluated (answers cached / generated, ...), stored in its record
        self.variant_facts: dict[str, Any] = {}

    def _cache_folder(self, kind: str) -> Path | None:
        return None if self.config.cache_dir is None else Path(self.config.cache_dir) / kind

    @property
    def _encoder(self) -> Encoder:
        if not isinstance(self.model, ContrastiveModel):
            raise BenchError(f"model '{self.model.name}' is a chat model; this task needs image and text embeddings")
        if self._encoder_instance is None:
            self._encoder_instance = Encoder(self.model, self._cache_folder("embeddings"), self.dist, self.config.batch_size,
                                     progress=self.config.progress)
        return self._encoder_instance

    def generate(self, requests: Sequence[GenerationRequest], *, skip_errors: bool = False,
                 desc: str = "answers") -> list[Answer]:
        """Greedy answers in request order: batched by prompt length, cached, sharded over torchrun ranks."""
        if not isinstance(self.model, ChatModel):
            raise BenchError(f"model '{self.model.name}' is a contrastive model; this task needs a chat model")
        if self._generator_instance is None:
            self._generator_instance = GenerationEngine(self.model, self._cache_folder("generations"), self.dist,
                                                self.config.batch_size, self.config.workers, self.config.progress,
                                                self.config.verify_batch_invariance)
        answers = self._generator_instance.run(requests, skip_errors=skip_errors, desc=desc)
        self.variant_facts.setdefault("generation", []).append(self._generator_instance.stats)
        return answers

    def encode_images(
        self,
        source: ImageSource,
        mode: str,
        *,
        normalize: bool = True,
        skip_errors: bool = False,
        max_workers: int | None = None,
        desc: str = "images",
    ) -> torch.Tensor:
        """float32 CPU [len(source), D] in dataset order; a frame-list item is the mean of its frames.

        ``max_workers`` caps the data-loader workers for sources that cannot feed more (e.g. one
        worker per webdataset shard).
        """
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        key = cache_key(
            kind="image",
            model=self.model_fingerprint,
            data=source.fingerprint(),
            mode=mode,
            precision=self.config.precision,
            normalize=normalize,
            skip_errors=skip_errors,
        )
        if self._last_images is not None and self._last_images[0] == key:
            return self._last_images[1]
        workers = self.config.workers if max_workers is None else min(self.config.workers, max_workers)
        images = self._encoder.images(source, key, mode, normalize, skip_errors, workers, desc)
        self._last_images = (key, images)
        return images

    def encode_texts(self, texts: Sequence[str], *, normalize: bool = True, desc: str = "texts") -> torch.Tensor:
        """float32 CPU [len(texts), D] in the given order."""
        digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()
        key = cache_key(
            kind="text", model=self.model_fingerprint, texts=digest, n=len(texts),
            precision=self.config.precision, normalize=normalize,
        )
        return self._encoder.texts(texts, key, normalize, desc)

    def intervals(self, n_units: int | Sequence[int], statistic: Statistic) -> dict[str, tuple[float, float]]:
        """The run's bootstrap intervals of ``statistic`` over ``n_units`` units (or strata; see
        ``internvl_bench.bootstrap``); ``{}`` when ``--bootstrap-resamples 0``."""
        return bootstrap_intervals(n_units, statistic, self.config.bootstrap_resamples, self.config.bootstrap_seed)

    @staticmethod
    def file_sha256(path: Path | str) -> str:
        return file_sha256(path)


def run_task(
    task_name: str,
    model_name: str,
    config: RunConfig,
    checkpoint: str | None = None,
    task_options: dict[str, Any] | None = None,
) -> list[ResultRecord]:
    """Evaluate ``model_name`` on every variant of ``task_name``; returns (and on rank 0 writes) records."""
    task_cls: type[Task] = TASKS.get(task_name)
    task = task_cls(task_cls.options_from_mapping(task_options or {}))
    variants = task.variants()
    kind = model_kind(model_name)
    if kind != task.model_kind:
        raise BenchError(f"task '{task.name}' evaluates {task.model_kind} models, but '{model_name}' is a {kind} model; "
                         "see 'internvl-bench list'")
    dist_info = distributed.init_from_env(config.device.type)
    if dist_info.world_size > 1 and config.device.type == "cuda":
        config.device = torch.device("cuda", dist_info.local_rank)
    config.rank, config.world_size = dist_info.rank, dist_info.world_size
    try:
        model = load_model(model_name, checkpoint=checkpoint, device=config.device, precision=config.precision,
                           **config.model_options)
        ctx = RunContext(model, config, dist_info)
        records = []
        for variant in variants:
            records.append(_evaluate_variant(task, variant, ctx, model_name, checkpoint))
        return records
    finally:
        distributed.shutdown(dist_info)


def run_spec(task: Task, model_name: str, checkpoint: str | None, config: RunConfig) -> dict[str, Any]:
    """The exact run, as ``internvl-bench rerun`` needs it: every task option (defaults resolved) and the engine."""
    return {"model": model_name, "checkpoint": checkpoint, "model_options": dict(config.model_options),
            "task": task.name, "task_options": dataclasses.asdict(task.options),
            "data_root": None if config.data_root is None else str(Path(config.data_root).expanduser().resolve()),
            "engine": config.engine()}


def _evaluate_variant(
    task: Task, variant: str, ctx: RunContext, model_name: str, checkpoint: str | None
) -> ResultRecord:
    config = ctx.config
    ctx.variant_facts = {}
    started = time.perf_counter()
    result = task.evaluate(variant, ctx)
    wall = time.perf_counter() - started
    options = {**dataclasses.asdict(task.options), "precision": config.precision, "batch_size": config.batch_size,
               "bootstrap_resamples": config.bootstrap_resamples, "bootstrap_seed": config.bootstrap_seed}
    if task.model_kind == "chat":
        options["verify_batch_invariance"] = config.verify_batch_invariance
    if config.model_options:
        options["model_options"] = {k: v for k, v in config.model_options.items() if v is not None}
    record = ResultRecord(
        task=task.name,
        task_version=task.version,
        variant=variant,
        model=model_name,
        checkpoint=checkpoint,
        metrics={k: float(v) for k, v in result.metrics.items()},
        intervals={k: [float(low), float(high)] for k, (low, high) in result.intervals.items()},
        n_samples=result.n_samples,
        options=options,
        details={**result.details, **ctx.variant_facts},
        spec=run_spec(task, model_name, checkpoint, config),
        provenance={
            "model": ctx.model.provenance(),
            "model_fingerprint": ctx.model_fingerprint,
            "data_files": result.data_files,
            "world_size": config.world_size,
            "wall_time_s": round(wall, 3),
            "throughput_items_per_s": round(result.n_samples / wall, 3) if wall > 0 else None,
            **environment(config.device),
        },
    )
    if ctx.is_main:
        if result.predictions is not None:
            log.info("wrote %s", write_predictions(record, result.predictions, config.output_dir))
        for name, content in result.artifacts.items():
            log.info("wrote %s", write_artifact(record, name, content, config.output_dir))
        path = write_record(record, config.output_dir)
        log.info("wrote %s", path)
    return record
