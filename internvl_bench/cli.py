"""``internvl-bench``: list, run, rerun, prepare, tables, results, regress, demo, efficiency, score.

Task options come from the task's ``Options`` dataclass: ``internvl-bench run --task xtd --help``
lists them. Every user error ends as one line on stderr and exit status 2; completed records and
embedding chunks stay on disk.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from internvl_bench import efficiency, reporting
from internvl_bench.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from internvl_bench.errors import BenchError
from internvl_bench.experiment import DEFAULT_RERUN_DIR
from internvl_bench.records import DEFAULT_RUNS_DIR, ResultRecord
from internvl_bench.registry import describe
from internvl_bench.runner import DEFAULT_CACHE_DIR, RunConfig, default_device, run_task
from internvl_bench.task import TASKS, Task
from model_zoo import MODELS
from model_zoo.base import PRECISIONS

#: --verify-batch-invariance without a value: answers closer than this many logits to a flip are re-checked
DEFAULT_VERIFY_MARGIN = 0.5


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = build_parser(argv).parse_args(argv)
        if not hasattr(args, "func"):
            build_parser(argv).print_help()
            return 2
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished embedding chunks and records are kept; re-run to resume", file=sys.stderr)
        return 130


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="internvl-bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")

    listing = sub.add_parser("list", help="list tasks and models")
    listing.set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="evaluate a model on a task, or every run of an experiment file")
    run.add_argument("--config", type=Path, metavar="FILE.yaml",
                     help="an experiment file: models x tasks, their options and the engine settings, in place of "
                          "every other flag (see configs/ and internvl_bench/experiment.py)")
    run.add_argument("--task", help="task name (see 'internvl-bench list')")
    run.add_argument("--model", help="model name, e.g. internvl-c or openclip:ViT-H-14")
    run.add_argument("--checkpoint", help="weights: local folder/file or hub id[@revision]; model default if omitted")
    run.add_argument("--data-root", type=Path, help="dataset folder")
    run.add_argument("--output-dir", type=Path, default=DEFAULT_RUNS_DIR, help="where result records go")
    run.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="embedding cache folder")
    run.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    run.add_argument("--precision", choices=sorted(PRECISIONS), help="default: bf16 on CUDA, fp32 on CPU")
    run.add_argument("--batch-size", type=int, default=64)
    run.add_argument("--workers", type=int, default=2, help="data-loader worker processes")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--vision-tower", help="chat models: the InternViT tower folder or OWNER/NAME@REVISION "
                                            "(default: what the checkpoint's mm_vision_tower names)")
    run.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                     help="a model-specific option, e.g. conv_template=llava_v1 (repeatable; recorded in results)")
    run.add_argument("--verify-batch-invariance", type=float, nargs="?", const=DEFAULT_VERIFY_MARGIN, default=None,
                     metavar="MARGIN", help="chat tasks: re-generate answers whose top-1/top-2 logit margin is below "
                                            f"MARGIN (default {DEFAULT_VERIFY_MARGIN}) alone and report how many changed")
    run.add_argument("--bootstrap-resamples", type=int, default=DEFAULT_RESAMPLES, metavar="N",
                     help="resamples of the 95%% bootstrap interval stored beside every metric (0: none; "
                          f"default {DEFAULT_RESAMPLES})")
    run.add_argument("--bootstrap-seed", type=int, default=DEFAULT_SEED, metavar="S",
                     help=f"seed of the bootstrap resamples (default {DEFAULT_SEED}; recorded)")
    task_name = _peek(argv, "--task")
    if task_name:
        try:
            add_task_options(run, TASKS.get(task_name))
        except BenchError:
            pass  # reported by cmd_run with the list of known tasks
    run.set_defaults(func=cmd_run)
    run.set_defaults(run_defaults={a.dest: a.default for a in run._actions if a.dest not in ("help", "config")})

    rerun = sub.add_parser("rerun", help="run again exactly what produced a record, and compare its metrics")
    rerun.add_argument("record", type=Path, metavar="RECORD.json", help="a result record (its 'spec' is what runs)")
    rerun.add_argument("--output-dir", type=Path, default=DEFAULT_RERUN_DIR,
                       help=f"where the new records go (default {DEFAULT_RERUN_DIR})")
    rerun.add_argument("--no-cache", action="store_true", help="recompute every embedding and answer")
    rerun.add_argument("--tolerance", type=float, default=0.0,
                       help="largest allowed change of a metric (default 0: equal); timings are not judged")
    rerun.set_defaults(func=cmd_rerun)

    prepare = sub.add_parser("prepare", help="download or verify a task's data")
    prepare.add_argument("task")
    prepare.add_argument("--data-root", type=Path, required=True)
    prepare.add_argument("--download", action="store_true", help="fetch what is missing (needs internet)")
    prepare.set_defaults(func=cmd_prepare)

    score = sub.add_parser("score", help="score existing prediction files (official formats or this project's)")
    score.add_argument("task", help="a chat task: mme, pope, tiny_lvlm, vqa, gqa, caption")
    score.add_argument("--predictions", type=Path, required=True,
                       help="a *.predictions.jsonl of this project, or the official format (see the task's docs)")
    score.add_argument("--annotations", type=Path, help="annotation file or folder the format needs")
    score.add_argument("--questions", type=Path, help="question file the format needs")
    score.add_argument("--evaluator", help="vqa: official, official-py3 or m4c (default)")
    score.add_argument("--json", dest="json_out", type=Path, required=True, help="write {variant: {metric: value}} here")
    score.set_defaults(func=cmd_score)

    reporting.add_parsers(sub)
    efficiency.add_parser(sub)

    demo = sub.add_parser("demo", help="every task on replicas of the synthetic world with the trained demo models")
    demo.add_argument("--workdir", type=Path, default=Path("demo_data"), help="data, runs and tables go here")
    demo.add_argument("--only", default=None, help="comma-separated tasks (default: all; then Table G too)")
    demo.add_argument("--scale", type=float, default=1.0, help="replica size factor (checksums hold for 1.0 only)")
    demo.add_argument("--threads", type=int, default=1, help="torch threads (numbers are pinned at 1)")
    demo.add_argument("--update-checksums", action="store_true",
                      help="accept changed replica bytes into internvl_bench/world/checksums.json")
    demo.set_defaults(func=cmd_demo)
    return parser


def _peek(argv: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def add_task_options(parser: argparse.ArgumentParser, task_cls: type[Task]) -> None:
    """One ``--flag`` per field of the task's Options dataclass (defaults are the paper's settings)."""
    group = parser.add_argument_group(f"{task_cls.name} options")
    for option in dataclasses.fields(task_cls.Options):
        flag = "--" + option.name.replace("_", "-")
        default = option.default if option.default is not dataclasses.MISSING else None
        help_text = f"{option.metadata.get('help', '')} (default: {default})"
        if isinstance(default, bool):
            group.add_argument(flag, dest=f"task_{option.name}", action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = type(default) if default is not None else str
            group.add_argument(
                flag, dest=f"task_{option.name}", metavar=None if option.metadata.get("choices") else option.name.upper(),
                type=kind, default=None, choices=option.metadata.get("choices"), help=help_text,
            )


def cmd_list(args: argparse.Namespace) -> int:
    for title, registry in (("tasks", TASKS), ("models", MODELS)):
        print(f"{title}:")
        rows = describe(registry)
        width = max(len(name) for name, _ in rows)
        for name, text in rows:
            print(f"  {name:<{width}}  {text}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.config:
        return _run_config(args)
    if not args.task or not args.model:
        raise BenchError("run needs --task and --model, or --config FILE.yaml")
    TASKS.get(args.task)  # unknown task -> one-line error listing the known ones
    options = {k.removeprefix("task_"): v for k, v in vars(args).items() if k.startswith("task_")}
    config = RunConfig(
        model_options=_model_options(args),
        verify_batch_invariance=args.verify_batch_invariance,
        bootstrap_resamples=args.bootstrap_resamples,
        bootstrap_seed=args.bootstrap_seed,
        data_root=args.data_root,
        output_dir=args.output_dir,
        cache_dir=None if args.no_cache else args.cache_dir,
        device=args.device or default_device(),
        precision=args.precision,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.no_progress,
    )
    records = run_task(args.task, args.model, config, checkpoint=args.checkpoint, task_options=options)
    if config.rank == 0:
        _print_records(records)
        print(f"records: {config.output_dir}")
    return 0


def _run_config(args: argparse.Namespace) -> int:
    """``run --config``: the file is the whole run; a flag beside it would be silently overridden, so it is refused."""
    given = sorted(dest for dest, default in args.run_defaults.items() if getattr(args, dest, default) != default)
    if given:
        flag = "--" + given[0].removeprefix("task_").replace("_", "-")
        raise BenchError(f"run --config {args.config}: {flag} belongs in the file (engine, models or tasks), "
                         "not on the command line")
    from internvl_bench.experiment import run_experiment

    records = run_experiment(args.config)
    if _is_main_process():
        _print_records(records)
        print("records: " + ", ".join(sorted({r.spec["engine"]["output_dir"] for r in records})))
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from internvl_bench.experiment import rerun

    original, again, moved = rerun(args.record, args.output_dir, args.no_cache, args.tolerance)
    if not _is_main_process():
        return 0
    _print_records([again])
    for line in moved:
        print(line)
    judged = len(original.metrics) - len(set(original.details.get("timed_metrics", ())) & set(original.metrics))
    print(f"rerun of {args.record}: {judged - len(moved)} of {judged} metrics reproduced"
          + (f" (tolerance {args.tolerance:g})" if args.tolerance else "") + f"; records: {args.output_dir}")
    return 1 if moved else 0


def _is_main_process() -> bool:
    """Rank 0 under torchrun (which sets RANK), or a single process: the one that prints."""
    return os.environ.get("RANK", "0") == "0"


def _print_records(records: list[ResultRecord]) -> None:
    """One line per record: its headline metrics with their intervals."""
    for record in records:
        headline = TASKS.get(record.task).headline_metrics if record.task in TASKS.names() else ()
        metrics = {k: record.metrics[k] for k in headline if k in record.metrics} or record.metrics
        shown = ", ".join(f"{k}={v:.2f}{_interval_text(record.intervals.get(k))}" for k, v in metrics.items())
        print(f"{record.task}/{record.variant} [{record.model}] n={record.n_samples}: {shown}")


def _interval_text(interval: list[float] | None) -> str:
    return "" if interval is None else f" [{interval[0]:.2f}, {interval[1]:.2f}]"


def _model_options(args: argparse.Namespace) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in args.model_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"--model-option '{item}': use KEY=VALUE, e.g. conv_template=llava_v1")
        options[key.strip().replace("-", "_")] = value.strip()
    if args.vision_tower:
        options["vision_tower"] = args.vision_tower
    return options


def cmd_score(args: argparse.Namespace) -> int:
    from internvl_bench.chat_task import ChatTask, ScoreInputs
    from internvl_bench.records import write_atomic

    task = TASKS.get(args.task)
    if not issubclass(task, ChatTask):
        raise BenchError(f"task '{args.task}' is not a chat task; 'score' rescores chat-task prediction files")
    for path in (args.predictions, args.annotations, args.questions):
        if path is not None and not path.exists():
            raise BenchError(f"{path}: no such file or folder")
    scores = task.score_files(ScoreInputs(args.predictions, args.annotations, args.questions, args.evaluator))
    write_atomic(args.json_out, json.dumps(scores, indent=2, sort_keys=True, allow_nan=True) + "\n")
    for variant, metrics in scores.items():
        shown = {k: metrics[k] for k in task.headline_metrics if k in metrics} or metrics
        print(f"{args.task}/{variant}: " + ", ".join(f"{k}={v:.2f}" for k, v in shown.items()))
    print(f"scores: {args.json_out}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    print(TASKS.get(args.task).prepare(args.data_root, args.download))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from internvl_bench.demo import run_demo

    only = [t.strip() for t in args.only.split(",") if t.strip()] if args.only else None
    print(run_demo(args.workdir, args.scale, only, args.threads, args.update_checksums))
    return 0


if __name__ == "__main__":
    sys.exit(main())
