"""``make demo``: every task of Tables A-F (and captioning, and Table G's timing) on replicas of the synthetic
world, with the trained demo models, offline, printed beside the paper's rows and each number's chance level.

1. ``world.replicas`` writes each benchmark in its real layout under ``WORKDIR/data`` (seeded; checked
   against ``world/checksums.json`` at the default size);
2. the tasks run through the normal engine (``run_task``) with ``internvl-c-demo`` / ``internvl-g-demo`` /
   ``internvl-chat-demo`` -- trained checkpoints in the official layouts, loaded by the real loaders --
   on CPU in float32, no disk cache (every number is recomputed), all records in ``WORKDIR/runs``;
3. Table G times the demo encoders (``WORKDIR/runs`` too; its timing metrics never enter a baseline);
4. the tables are rendered with a "chance" row per variant (``world.chance``) and written to
   ``WORKDIR/tables`` as Markdown (``table_a.md``) and LaTeX (``table_a.tex``), with the figures of
   ``internvl_bench.plots`` (PNG and PDF).

At one thread the numbers are the same on every machine; CI compares them with
``results/leaderboard/demo.json`` (``internvl-bench regress --baseline results/leaderboard/demo.json
--runs WORKDIR/runs``).
"""
from __future__ import annotations

import argparse
import copy
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from internvl_bench.records import ResultRecord, load_records
from internvl_bench.reporting import TABLES, load_table, our_values, render
from internvl_bench.runner import RunConfig, run_task
from internvl_bench.world import replicas

CONTRASTIVE = ("internvl-c-demo", "internvl-g-demo")
CHAT = ("internvl-chat-demo",)
CHANCE_MODEL = "chance"


@dataclass(frozen=True)
class DemoRun:
    task: str
    models: tuple[str, ...]
    #: the replica folder the task's --data-root points at
    data: str
    options: dict[str, Any] = field(default_factory=dict)
    #: the replicas this run needs (default: ``data`` itself)
    needs: tuple[str, ...] = ()


#: what the demo runs: every task of Tables A-F and captioning, the val splits where the paper's are
#: server-scored (VQAv2 test-dev, VizWiz test)
DEMO_RUNS = (
    DemoRun("xtd", CONTRASTIVE, "xtd"),
    DemoRun("zeroshot_classification", CONTRASTIVE, "classification", {"datasets": "cifar10,mnist,dtd"},
            ("classification/cifar10", "classification/mnist", "classification/dtd")),
    DemoRun("msrvtt", CONTRASTIVE, "msrvtt"),
    DemoRun("retrieval", CONTRASTIVE, "retrieval", {"datasets": "flickr30k,flickr30k_cn"}),
    DemoRun("tiny_lvlm", CHAT, "tiny_lvlm"),
    DemoRun("mme", CHAT, "mme"),
    DemoRun("pope", CHAT, "pope"),
    DemoRun("vqa", CHAT, "vqa", {"variants": "vqav2_val,vizwiz_val,textvqa_val"}),
    DemoRun("gqa", CHAT, "gqa"),
    DemoRun("caption", CHAT, "caption"),
)
#: Table F's server-scored columns, shown for the demo on the replica's val split
DEMO_VARIANTS = {"vqav2_testdev": "vqav2_val", "vizwiz_test": "vizwiz_val"}


def chance_records(manifests: list[dict]) -> list[ResultRecord]:
    """The replicas' chance levels as records of a pseudo-model, so tables compute their cells as for ours."""
    return [ResultRecord(task=c["task"], variant=c["variant"], model=CHANCE_MODEL, metrics=c["metrics"], n_samples=0,
                         options={}, provenance={"source": "internvl_bench.world.chance"})
            for m in manifests for c in m["chance"]]


def demo_table(letter: str, chance: list[ResultRecord]) -> dict[str, Any]:
    """A paper table with the demo's val splits in place of server-scored ones and a chance row per variant."""
    table = copy.deepcopy(load_table(letter))
    swapped = [c for c in table["columns"] if c.get("variant") in DEMO_VARIANTS]
    for column in swapped:
        column["variant"] = DEMO_VARIANTS[column["variant"]]
        column["label"] += "*"
    if swapped:
        table["paper_rows_note"] = (table.get("paper_rows_note", "") + " *: demo rows score the replica's val split "
                                    "(the paper's split is scored by the EvalAI server only).").strip()
    x = table.get("plot", {}).get("x")  # a line plot's x (Table C: frames) is a row field: copy it
    variants = list(dict.fromkeys(r.get("variant") for r in table["rows"])) or [None]
    for variant in variants:
        values = our_values(table, chance, CHANCE_MODEL, None, {"variant": variant})
        if any(v is not None for v in values.values()):
            row = {"method": "chance (demo replica)", "variant": variant, "values": values}
            if x and x != "variant":
                row[x] = next(r[x] for r in table["rows"] if r.get("variant") == variant and x in r)
            table["rows"].append(row)
    return table


def _run_efficiency(runs: Path) -> None:
    from internvl_bench import efficiency

    for model in CONTRASTIVE:  # at 224 px only: the demo towers are trained at 64 px
        efficiency.run(argparse.Namespace(model=model, checkpoint=None, resolutions="224", batch_size=8,
                                          precision="fp32", device="cpu", attention="auto", random_weights=False,
                                          warmup=1, iters=3, peak_tflops=None, output_dir=runs))


def run_demo(workdir: Path, scale: float = 1.0, only: list[str] | None = None, threads: int = 1,
             update_checksums: bool = False, efficiency: bool = True, log=print) -> str:
    """Write the replicas, run the tasks (``only``: a subset by task name), return the rendered tables."""
    workdir = Path(workdir)
    torch.set_num_threads(threads)
    runs_wanted = [r for r in DEMO_RUNS if only is None or r.task in only]
    started = time.perf_counter()
    names = [n for r in runs_wanted for n in (r.needs or (r.data,))]
    manifests = replicas.write_replicas(workdir / "data", names, scale)
    if scale == 1.0:
        replicas.verify(manifests, update=update_checksums)
    log(f"replicas: {len(manifests)} under {workdir / 'data'} ({time.perf_counter() - started:.0f} s)")
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    for demo in runs_wanted:
        for model in demo.models:
            begun = time.perf_counter()
            config = RunConfig(data_root=workdir / "data" / demo.data, output_dir=runs, cache_dir=None, device="cpu",
                               precision="fp32", batch_size=32, workers=1, progress=False)
            run_task(demo.task, model, config, task_options=demo.options)
            log(f"{demo.task} / {model}: {time.perf_counter() - begun:.0f} s")
    if efficiency and only is None:
        _run_efficiency(runs)
    log(f"demo: {time.perf_counter() - started:.0f} s in all, {threads} thread(s)")
    records, chance = load_records(runs), chance_records(manifests)
    out = workdir / "tables"
    out.mkdir(parents=True, exist_ok=True)
    from internvl_bench.plots import plot_table  # matplotlib: imported only once the numbers are in

    texts = []
    for letter in TABLES:
        table = demo_table(letter, chance)
        text = render(table, records, "md", ci=True)
        (out / f"table_{letter.lower()}.md").write_text(text, encoding="utf-8")
        (out / f"table_{letter.lower()}.tex").write_text(render(table, records, "latex", ci=True), encoding="utf-8")
        plot_table(table, records, out)
        texts.append(text)
    log(f"tables and figures: {out}")
    return "\n".join(texts)
