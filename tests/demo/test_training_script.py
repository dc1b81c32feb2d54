"""The demo models' training script: the targets of its training-only losses, and one stage-4 step on
the committed chat model (claims found at their "?", every loss finite and logged)."""
from __future__ import annotations

import importlib.util
import math
import random
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from internvl_bench.world import questions
from internvl_bench.world.scenes import SHAPES, Scene, Thing

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_demo_models.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_demo_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


SCENE = Scene("grey", (Thing("circle", "red", "striped", 0), Thing("star", "blue", "plain", 3)), digit=7, digit_cell=1,
              border="green")


@pytest.mark.parametrize("subtask, truths", [
    ("color", {"red", "blue"}), ("artwork", {"striped", "plain"}), ("OCR", {"7"}), ("posters", {"green"}),
    ("position", {"left", "right"}), ("landmark", {"top", "bottom"}), ("commonsense_reasoning", {None}),
])
def test_a_claim_pair_carries_the_word_the_image_shows(script, subtask: str, truths: set) -> None:
    rng = random.Random(0)
    for _ in range(10):
        turns = script._claim_pair(rng, questions.mme_pair(subtask, SCENE, rng))
        assert sorted(answer for _, answer, _ in turns) == ["No", "Yes"]
        assert len({truth for _, _, truth in turns}) == 1 and turns[0][2] in truths


def test_cell_targets_name_contents_and_place(script) -> None:
    targets = script.cell_targets([SCENE], 4, ("shape", "texture", "side", "half"))[0]
    top_left, top_right, bottom_right = targets[0], targets[3], targets[15]
    assert top_left.tolist() == [SHAPES.index("circle"), 1, 0, 0]
    assert top_right.tolist() == [len(SHAPES), 3, 1, 0]  # the digit's cell holds no thing
    assert bottom_right.tolist() == [SHAPES.index("star"), 0, 1, 1]
    assert torch.equal(script.cell_targets([SCENE], 4)[0], targets[:, :2])


def test_one_stage_four_step_on_the_committed_chat_model(script) -> None:
    from model_zoo.internvl_chat.adapter import load_internvl_chat

    torch.manual_seed(0)
    model = load_internvl_chat(str(script.CHAT_DIR), None, "cpu", torch.float32)
    stage = replace(script.TUNE_STAGES[-1], steps=1, warmup=1, tower_lr=0.0)
    before = model.net.language_model.lm_head.weight.detach().clone()
    curve = script._chat_steps(model.net, model.tokenizer, random.Random(1), stage, 4, "test")
    (step, *losses), = curve
    assert step == 0 and len(losses) == 4 and all(math.isfinite(x) and x > 0 for x in losses)
    assert not torch.equal(before, model.net.language_model.lm_head.weight)


def test_a_stage_log_nests_the_one_before_without_its_stale_checksums(script, tmp_path: Path) -> None:
    import json

    (tmp_path / "weights.bin").write_bytes(b"new")
    (tmp_path / "training_log.json").write_text(json.dumps({"model": "stage 3", "sha256": {"weights.bin": "old"}}))
    script._write_log(tmp_path, "stage 4", 10, 2, [[0, 1.0]], 1.0, nest_earlier=True)
    log = json.loads((tmp_path / "training_log.json").read_text())
    assert log["earlier_stage"] == {"model": "stage 3"} and log["model"] == "stage 4"
    assert log["sha256"] == {"weights.bin": script._sha256(tmp_path / "weights.bin")}
