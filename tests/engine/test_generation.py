"""The generation engine: requests -> batched, cached, sharded answers, through the runner and the CLI.

``tests/engine/_chat_probe.py`` registers a test-only chat task (two questions per image) that calls
``ctx.generate`` like the chat benchmarks do; the tiny InternVL-Chat is the model.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from internvl_bench.cli import main
from internvl_bench.samples import draw_shape
from tests.engine import _chat_probe  # noqa: F401  (registers chat_probe)

PROBE = Path(_chat_probe.__file__)
REPO = Path(__file__).resolve().parents[2]
MODEL = ["--model", "internvl-chat-tiny"]


@pytest.fixture(autouse=True)
def tiny_checkpoint_cache(tmp_path_factory, monkeypatch):
    """The tiny chat checkpoint is written once per session under a shared cache root."""
    monkeypatch.setenv("INTERNVL_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "tiny-root"))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    for i, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "triangle"),
                                         ("yellow", "circle"), ("red", "square"), ("blue", "triangle")]):
        image = draw_shape(colour, shape, size=48 + 16 * i, seed=i)
        image.save(root / f"{colour}_{shape}_{i}.png")
    return root


def args(tmp_path: Path, images: Path, *extra: str, out: str = "runs", cache: str | None = "cache") -> list[str]:
    base = ["run", "--task", "chat_probe", *MODEL, "--data-root", str(images), "--output-dir", str(tmp_path / out),
            "--device", "cpu", "--workers", "0", "--no-progress", "--batch-size", "4"]
    base += ["--cache-dir", str(tmp_path / cache)] if cache else ["--no-cache"]
    return base + list(extra)


def record(tmp_path: Path, out: str = "runs") -> dict:
    return json.loads(next((tmp_path / out).glob("*__chat_probe__all.json")).read_text())


def predictions(tmp_path: Path, out: str = "runs") -> list[dict]:
    path = next((tmp_path / out).glob("*__chat_probe__all.predictions.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_record_and_predictions_and_rerun_is_served_from_cache(tmp_path: Path, images: Path) -> None:
    assert main(args(tmp_path, images)) == 0
    first = record(tmp_path)
    rows = predictions(tmp_path)
    assert len(rows) == 12 and first["n_samples"] == 12
    assert set(rows[0]) >= {"id", "prompt", "raw_output", "token_ids", "min_margin", "parsed", "target", "score"}
    assert rows[0]["prompt"].startswith("A chat between") and rows[0]["prompt"].count("<image>\n") == 1
    assert all(len(r["token_ids"]) <= 6 for r in rows)
    stats = first["details"]["generation"][0]
    assert stats["generated_this_run"] == 12 and stats["from_cache"] == 0
    assert stats["options"] == [{"max_new_tokens": 6, "min_new_tokens": 0}]
    assert first["options"]["verify_batch_invariance"] is None and first["options"]["batch_size"] == 4
    model = first["provenance"]["model"]
    assert model["conversation_template"] == "vicuna_v1" and model["rotary_inv_freq_fp32"] is True

    assert main(args(tmp_path, images, out="again")) == 0
    again = record(tmp_path, "again")
    assert again["details"]["generation"][0]["from_cache"] == 12
    assert again["details"]["generation"][0]["generated_this_run"] == 0
    assert predictions(tmp_path, "again") == rows and again["metrics"] == first["metrics"]


def test_any_batch_size_gives_the_batch_one_answers(tmp_path: Path, images: Path) -> None:
    answers = {}
    for size, workers in (("1", "0"), ("3", "2"), ("8", "1")):  # with data-loader workers too
        assert main([*args(tmp_path, images, out=f"b{size}", cache=None), "--batch-size", size, "--workers", workers]) == 0
        answers[size] = [(r["id"], r["token_ids"]) for r in predictions(tmp_path, f"b{size}")]
    assert answers["1"] == answers["3"] == answers["8"]


def test_cache_key_follows_prompt_and_options(tmp_path: Path, images: Path) -> None:
    assert main(args(tmp_path, images)) == 0
    assert main(args(tmp_path, images, "--max-new-tokens", "3", out="short")) == 0
    assert record(tmp_path, "short")["details"]["generation"][0]["generated_this_run"] == 12
    assert main(args(tmp_path, images, "--question", "What is it?", out="other")) == 0
    stats = record(tmp_path, "other")["details"]["generation"][0]
    assert stats["generated_this_run"] == 12
    moved = tmp_path / "moved"
    shutil.copytree(images, moved)  # same bytes elsewhere: the content hash still hits
    assert main(args(tmp_path, moved, out="moved-run")) == 0
    assert record(tmp_path, "moved-run")["details"]["generation"][0]["from_cache"] == 12


def test_verify_batch_invariance_rechecks_and_reports(tmp_path: Path, images: Path) -> None:
    assert main(args(tmp_path, images, "--verify-batch-invariance", "1e9")) == 0
    check = record(tmp_path)["details"]["generation"][0]["batch_invariance"]
    assert check == {"margin_below": 1e9, "rechecked_this_run": 12, "changed": 0, "answers_at_batch1": 12}
    assert main(args(tmp_path, images, "--verify-batch-invariance", "1e9", out="again")) == 0
    check = record(tmp_path, "again")["details"]["generation"][0]["batch_invariance"]
    assert check["rechecked_this_run"] == 0 and check["answers_at_batch1"] == 12
    assert main(args(tmp_path, images, "--verify-batch-invariance", "--precision", "bf16", out="bf16",
                     cache=None)) == 0
    bf16 = record(tmp_path, "bf16")
    check = bf16["details"]["generation"][0]["batch_invariance"]
    assert check["margin_below"] == 0.5 and 0 <= check["changed"] <= check["rechecked_this_run"] <= 12
    assert bf16["provenance"]["model"]["precision"] == "bf16"


def test_killed_run_resumes_without_regenerating_finished_batches(tmp_path: Path, images: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(PROBE), *args(tmp_path, images, "--sleep", "0.6", "--batch-size", "2")]
    cache = tmp_path / "cache" / "generations"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(cache.rglob("*.json"))) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = list(cache.rglob("*.json"))
    assert 1 <= len(finished) < 6, "the kill should land after the first batch and before the last"
    assert not list(cache.rglob("*.tmp")), "no half-written batch is left behind"
    done = sum(len(json.loads(p.read_text())["entries"]) for p in finished)

    subprocess.run([sys.executable, str(PROBE), *args(tmp_path, images, "--batch-size", "2", out="resumed")],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats = record(tmp_path, "resumed")["details"]["generation"][0]
    assert stats["from_cache"] == done and stats["generated_this_run"] == 12 - done
    assert main(args(tmp_path, images, "--batch-size", "2", out="fresh", cache=None)) == 0
    assert [r["token_ids"] for r in predictions(tmp_path, "resumed")] == \
        [r["token_ids"] for r in predictions(tmp_path, "fresh")]


def test_two_torchrun_ranks_equal_one_process(tmp_path: Path, images: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun must sit next to the interpreter (it comes with torch)"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun sets for its ranks
    try:
        assert main(args(tmp_path, images, "--batch-size", "3", out="one", cache="cache1")) == 0
    finally:
        torch.set_num_threads(threads)
    subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(PROBE),
                    *args(tmp_path, images, "--batch-size", "3", out="two", cache="cache2")],
                   env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    one, two = record(tmp_path, "one"), record(tmp_path, "two")
    assert one["metrics"] == two["metrics"]
    assert (one["provenance"]["world_size"], two["provenance"]["world_size"]) == (1, 2)
    assert predictions(tmp_path, "one") == predictions(tmp_path, "two")
    assert two["details"]["generation"][0]["generated_this_run"] == 12
    batches1 = sorted(p.name for p in (tmp_path / "cache1").rglob("*.json"))
    batches2 = sorted(p.name for p in (tmp_path / "cache2").rglob("*.json"))
    assert batches1 == batches2 and len(batches1) == 4  # 12 requests in batches of 3, 2 per rank


def test_bad_image_is_one_line_and_finished_batches_stay(tmp_path: Path, images: Path, capsys) -> None:
    victim = sorted(images.glob("*.png"))[-1]
    victim.write_bytes(victim.read_bytes()[:60])
    assert main(args(tmp_path, images, "--batch-size", "2")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and victim.name in err[0] and "corrupt or unreadable image" in err[0]
    assert list((tmp_path / "cache" / "generations").rglob("*.json")), "batches before the bad one are kept"
    assert main(args(tmp_path, images, "--batch-size", "2", "--skip-bad-items", out="skipping")) == 0
    skipped = record(tmp_path, "skipping")
    assert skipped["details"]["skipped_items"] == 2 and skipped["n_samples"] == 10
    assert skipped["details"]["generation"][0]["skipped"] == 2
    assert sum("error" in r for r in predictions(tmp_path, "skipping")) == 2


def test_image_placeholder_in_a_question_is_refused(tmp_path: Path, images: Path, capsys) -> None:
    assert main(args(tmp_path, images, "--question", "<image> twice?")) == 2
    assert "already holds '<image>'" in capsys.readouterr().err


@pytest.mark.parametrize("task,model,message", [
    ("xtd", "internvl-chat-tiny", "task 'xtd' evaluates contrastive models, but 'internvl-chat-tiny' is a chat model"),
    ("chat_probe", "internvl-c-tiny", "task 'chat_probe' evaluates chat models, but 'internvl-c-tiny' is a contrastive"),
])
def test_task_and_model_kinds_must_match(tmp_path: Path, images: Path, capsys, task: str, model: str,
                                         message: str) -> None:
    assert main(["run", "--task", task, "--model", model, "--data-root", str(images), "--no-cache",
                 "--output-dir", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err


def test_model_options_reach_the_model_and_the_record(tmp_path: Path, images: Path, capsys) -> None:
    assert main(args(tmp_path, images, "--model-option", "conv_template=llava_v1", cache=None)) == 0
    rec = record(tmp_path)
    assert rec["options"]["model_options"] == {"conv_template": "llava_v1"}
    assert rec["provenance"]["model"]["conversation_template"] == "llava_v1"
    assert predictions(tmp_path)[0]["prompt"].startswith("A chat between a curious human")
    assert main(args(tmp_path, images, "--model-option", "colour=blue", cache=None)) == 2
    assert "takes no option 'colour'" in capsys.readouterr().err
