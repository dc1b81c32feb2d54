"""The synthetic world and its benchmark replicas: deterministic, in the tasks' layouts, with chance levels."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from internvl_bench.errors import BenchError
from internvl_bench.world import chance, language, questions, replicas
from internvl_bench.world.scenes import SHAPES, SceneSpec, render, sample_scene


def test_every_replica_is_the_same_bytes_from_the_same_seed(tmp_path: Path) -> None:
    first = replicas.write_replicas(tmp_path / "a", scale=0.04)
    second = replicas.write_replicas(tmp_path / "b", scale=0.04)
    assert [m["digest"] for m in first] == [m["digest"] for m in second]
    assert len({m["digest"] for m in first}) == len(replicas.REPLICAS)
    reused = replicas.write_replicas(tmp_path / "a", ["xtd"], scale=0.04)[0]
    assert reused == first[0]
    (tmp_path / "a" / "xtd" / "test_1kcaptions_en.txt").write_text("edited\n", encoding="utf-8")
    rewritten = replicas.write_replicas(tmp_path / "a", ["xtd"], scale=0.04)[0]
    assert rewritten["digest"] == first[0]["digest"]  # an edited replica is rewritten, not trusted


def test_a_changed_replica_fails_verification_naming_it(tmp_path: Path) -> None:
    manifest = replicas.write_replicas(tmp_path, ["gqa"], scale=0.04)[0]
    with pytest.raises(BenchError, match="replica 'gqa'.*--update-checksums"):
        replicas.verify([manifest])
    with pytest.raises(BenchError, match="unknown replica 'gqaa'"):
        replicas.write_replicas(tmp_path, ["gqaa"])


def test_recorded_checksums_cover_every_replica() -> None:
    assert set(replicas.recorded_checksums()) == set(replicas.REPLICAS)


def test_replica_files_are_in_the_real_layouts(tmp_path: Path) -> None:
    replicas.write_replicas(tmp_path, ["xtd", "mme", "pope", "msrvtt"], scale=0.05)
    names = (tmp_path / "xtd" / "test_image_names.txt").read_text(encoding="utf-8").split()
    for lang in language.LANGUAGES:
        assert len((tmp_path / "xtd" / f"test_1kcaptions_{lang}.txt").read_text(encoding="utf-8").splitlines()) == len(names)
    assert all((tmp_path / "xtd" / ("val2014" if "val" in n else "train2014") / n).is_file() for n in names)
    posters = sorted((tmp_path / "mme" / "posters" / "questions_answers_YN").glob("*.txt"))
    lines = posters[0].read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[1] for line in lines] == ["Yes", "No"]
    assert lines[0].endswith("Please answer yes or no.\tYes")
    assert (tmp_path / "mme" / "posters" / "images" / (posters[0].stem + ".jpg")).is_file()
    assert (tmp_path / "mme" / "code_reasoning" / "0000.png").is_file()
    rows = [json.loads(x) for x in (tmp_path / "pope" / "coco_pope_adversarial.json").read_text().splitlines()]
    assert {r["label"] for r in rows} == {"yes", "no"} and set(rows[0]) == {"question_id", "image", "text", "label"}
    header = (tmp_path / "msrvtt" / "MSRVTT_JSFUSION_test.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "key,vid_key,video_id,sentence"


def test_pope_questions_are_half_present_half_absent(tmp_path: Path) -> None:
    replicas.write_replicas(tmp_path, ["pope"], scale=0.2)
    for split in ("random", "popular", "adversarial"):
        rows = [json.loads(x) for x in (tmp_path / "pope" / f"coco_pope_{split}.json").read_text().splitlines()]
        assert sum(r["label"] == "yes" for r in rows) == len(rows) // 2


def test_mme_pairs_are_yes_then_no_and_true_of_the_scene() -> None:
    rng = random.Random(3)
    for subtask in questions_subtasks():
        for _ in range(20):
            scene = sample_scene(rng, SceneSpec(digit_probability=1.0, border_probability=1.0))
            pair = questions.mme_pair(subtask, scene, rng)
            if pair is not None:
                assert [qa.answer for qa in pair] == ["Yes", "No"]
                assert pair[0].question != pair[1].question


def questions_subtasks() -> tuple[str, ...]:
    from internvl_bench.world.chat_sets import MME_SUBTASKS

    return MME_SUBTASKS


def test_captions_name_every_thing_in_every_language() -> None:
    scene = sample_scene(random.Random(5), SceneSpec(min_things=3))
    for lang in language.LANGUAGES:
        caption = language.describe(scene, lang)
        for thing in scene.things:
            assert language.word("shape", thing.shape, lang) in caption
    image = render(scene, 64)
    assert image.size == (64, 64) and len(image.getcolors(64 * 64)) > 3
    assert all(s in SHAPES for s in (t.shape for t in scene.things))


def test_chance_levels() -> None:
    levels = chance.retrieval_chance(200, 1)
    assert levels["i2t_R@10"] == pytest.approx(5.0) and levels["t2i_R@1"] == pytest.approx(0.5)
    two = chance.retrieval_chance(3, 2)  # 6 captions, 2 positives: P(top-1 hit) = 2/6
    assert two["i2t_R@1"] == pytest.approx(100 / 3) and two["i2t_R@10"] == pytest.approx(100.0)
    assert chance.vqa_accuracy("red", ["red"] * 10) == 1.0
    assert chance.vqa_accuracy("red", ["red"] * 2 + ["blue"] * 8) == pytest.approx((8 * 2 / 3 + 2 * 1 / 3) / 10)
    assert chance.uniform_vqa_chance([["a"] * 10, ["b"] * 10]) == pytest.approx(50.0)
    assert chance.uniform_exact_chance(["1", "2", "3", "1"]) == pytest.approx(100 / 3)
