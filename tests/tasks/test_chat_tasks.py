"""The chat benchmarks end to end: fixtures in the real layouts -> tiny InternVL-Chat through the CLI ->
records, predictions, Tables E and F; rescoring with ``internvl-bench score``; bad input.

The tiny model's answers are noise, so the checks are that every number equals what the scorers give on
the predictions that were written, through every path (record, our predictions file, official formats).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from internvl_bench.cli import main
from internvl_bench.metrics.gqa import gqa_accuracy
from internvl_bench.metrics.mme import MMEItem, mme_scores
from internvl_bench.metrics.pope import pope_metrics
from internvl_bench.metrics.vqa import evalai_answer, vqa_metrics
from internvl_bench.records import load_records
from internvl_bench.reporting import build_rows, load_table
from tasks.pope import detect_version
from tests.fixtures import chat_data
from tests.fixtures.intervals import assert_intervals

MODEL = "internvl-chat-tiny"


@pytest.fixture(autouse=True)
def tiny_checkpoint_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INTERNVL_BENCH_CACHE", str(tmp_path_factory.getbasetemp() / "tiny-root"))


def run(tmp_path: Path, task: str, data: Path, *extra: str, out: str = "runs") -> int:
    return main(["run", "--task", task, "--model", MODEL, "--data-root", str(data), "--output-dir",
                 str(tmp_path / out), "--no-cache", "--no-progress", "--workers", "0", "--batch-size", "8", *extra])


def record(tmp_path: Path, task: str, variant: str, out: str = "runs") -> dict:
    return json.loads((tmp_path / out / f"{MODEL}__{task}__{variant}.json").read_text())


def predictions_file(tmp_path: Path, task: str, variant: str, out: str = "runs") -> Path:
    return tmp_path / out / f"{MODEL}__{task}__{variant}.predictions.jsonl"


def rows(tmp_path: Path, task: str, variant: str, out: str = "runs") -> list[dict]:
    return [json.loads(line) for line in predictions_file(tmp_path, task, variant, out).read_text().splitlines()]


def score(tmp_path: Path, task: str, *args: str) -> dict:
    out = tmp_path / f"score-{task}.json"
    assert main(["score", task, *args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def one_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


# -- MME -------------------------------------------------------------------------------------------
def test_mme_release_folder_end_to_end_and_rescoring(tmp_path: Path) -> None:
    data = chat_data.write_mme(tmp_path / "MME_Benchmark_release_version")
    assert run(tmp_path, "mme", data, "--bootstrap-resamples", "200", "--bootstrap-seed", "5") == 0
    rec = record(tmp_path, "mme", "all")
    assert rec["details"]["source"] == "release" and rec["n_samples"] == 28
    assert_intervals(rec, resamples=200, seed=5)
    lines = rows(tmp_path, "mme", "all")
    assert len(lines) == 28 and lines[0]["prompt"].endswith("Please answer yes or no. ASSISTANT:")
    assert {"subtask", "image", "target", "parsed", "score"} <= set(lines[0])
    expected = mme_scores([MMEItem(r["subtask"], r["image"], r["question"], r["target"], r["raw_output"]) for r in lines])
    assert rec["metrics"] == pytest.approx(expected) and {"perception", "cognition", "OCR_acc_plus"} <= set(expected)
    assert score(tmp_path, "mme", "--predictions", str(predictions_file(tmp_path, "mme", "all"))) == {"all": expected}
    results = tmp_path / "eval_tool_results"  # the MME tool's own results folder format
    results.mkdir()
    for subtask in {r["subtask"] for r in lines}:
        (results / f"{subtask}.txt").write_text("".join(
            f"{r['image']}\t{r['question']}\t{r['target']}\t{r['raw_output']}\n" for r in lines if r["subtask"] == subtask))
    assert score(tmp_path, "mme", "--predictions", str(results))["all"] == pytest.approx(expected)


def test_mme_parquet_source_and_lmms_eval_prompt(tmp_path: Path) -> None:
    data = chat_data.write_mme_parquet(tmp_path / "MME-hf")
    assert run(tmp_path, "mme", data, "--subtasks", "existence,OCR,code_reasoning", "--prompt", "lmms-eval") == 0
    rec = record(tmp_path, "mme", "custom")
    assert rec["details"]["source"] == "parquet" and rec["n_samples"] == 6
    assert rec["options"]["prompt"] == "lmms-eval"
    prompt = rows(tmp_path, "mme", "custom")[0]["prompt"]
    assert "Please answer yes or no." not in prompt
    assert "?\nAnswer the question using a single word or phrase. ASSISTANT:" in prompt


@pytest.mark.parametrize("damage,message", [
    ("missing", "OCR: MME subtask folder missing"),
    ("no-tab", "line 1 has 0 tabs; expected 'question<TAB>Yes|No'"),
    ("label", "line 2 has label 'Maybe'; expected Yes or No"),
])
def test_mme_bad_input(tmp_path: Path, capsys, damage: str, message: str) -> None:
    data = chat_data.write_mme(tmp_path / "mme")
    text = next((data / "OCR").glob("*.txt"))
    if damage == "missing":
        shutil.rmtree(data / "OCR")
    elif damage == "no-tab":
        text.write_text(text.read_text().replace("\t", " ", 1))
    else:
        text.write_text(text.read_text().replace("\tNo", "\tMaybe"))
    assert run(tmp_path, "mme", data) == 2
    line = one_error(capsys)
    assert message in line and (damage == "missing" or text.name in line)


# -- POPE ------------------------------------------------------------------------------------------
def test_pope_end_to_end_with_llava_answer_files(tmp_path: Path, capsys) -> None:
    data = chat_data.write_pope(tmp_path / "pope")
    assert run(tmp_path, "pope", data) == 0
    llava_questions, answers = [], []
    for split in ("random", "popular", "adversarial"):
        rec, lines = record(tmp_path, "pope", split), rows(tmp_path, "pope", split)
        assert rec["metrics"] == pope_metrics([r["raw_output"] for r in lines], [r["target"] for r in lines])
        assert_intervals(rec)
        assert rec["details"]["pope_version"] == "unknown (12 questions)"
        assert lines[0]["prompt"].endswith("in the image?\nAnswer the question using a single word or phrase. ASSISTANT:")
        for r in lines:  # LLaVA's files: unique ids across splits, category per question
            qid = f"{split}-{r['question_id']}"
            llava_questions.append({"question_id": qid, "image": r["image"], "category": split})
            answers.append({"question_id": qid, "text": r["raw_output"]})
    for path, content in (("questions.jsonl", llava_questions), ("answers.jsonl", answers)):
        (tmp_path / path).write_text("".join(json.dumps(x) + "\n" for x in content))
    scored = score(tmp_path, "pope", "--predictions", str(tmp_path / "answers.jsonl"), "--annotations", str(data),
                   "--questions", str(tmp_path / "questions.jsonl"))
    assert scored == {split: record(tmp_path, "pope", split)["metrics"] for split in ("random", "popular", "adversarial")}
    assert main(["score", "pope", "--predictions", str(tmp_path / "answers.jsonl"), "--annotations", str(data),
                 "--json", str(tmp_path / "x.json")]) == 2
    assert "question id 1 is in more than one split file; pass --questions" in one_error(capsys)
    tables = build_rows(load_table("F"), load_records(tmp_path / "runs"))
    ours = next(r for r in tables if r.label.startswith(MODEL))
    f1s = [record(tmp_path, "pope", s)["metrics"]["f1"] for s in ("random", "popular", "adversarial")]
    assert ours.values["pope"] == pytest.approx(sum(f1s) / 3)


def test_pope_version_detection(tmp_path: Path) -> None:
    for split, count in (("random", 2910), ("popular", 3000), ("adversarial", 3000)):
        (tmp_path / f"coco_pope_{split}.json").write_text(
            "".join(json.dumps({"question_id": i, "image": "x.jpg", "text": "?", "label": "yes"}) + "\n"
                    for i in range(count)))
    assert detect_version(tmp_path).startswith("e3e3926")
    (tmp_path / "coco_pope_random.json").write_text((tmp_path / "coco_pope_popular.json").read_text())
    assert detect_version(tmp_path).startswith("9,000")


def test_pope_line_without_label(tmp_path: Path, capsys) -> None:
    data = chat_data.write_pope(tmp_path / "pope")
    path = data / "coco_pope_popular.json"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[2])
    del broken["label"]
    lines[2] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")
    assert run(tmp_path, "pope", data, "--splits", "popular") == 2
    assert "coco_pope_popular.json: line 3: missing 'label'" in one_error(capsys)


# -- Tiny LVLM -------------------------------------------------------------------------------------
def test_tiny_lvlm_end_to_end_and_official_results_file(tmp_path: Path) -> None:
    data = chat_data.write_tiny_lvlm(tmp_path / "updated_datasets")
    assert run(tmp_path, "tiny_lvlm", data) == 0
    rec = record(tmp_path, "tiny_lvlm", "updated")
    metrics = rec["metrics"]
    assert set(metrics) == {"VR", "VP", "VKA", "VC", "OH", "overall"}
    assert metrics["overall"] == pytest.approx(sum(metrics[k] for k in ("VR", "VP", "VKA", "VC", "OH")))
    assert_intervals(rec)
    lines = rows(tmp_path, "tiny_lvlm", "updated")
    assert lines[0]["prompt"].endswith("? Answer the question using a single word or phrase. ASSISTANT:")
    assert rec["details"]["generation"][0]["options"] == [{"max_new_tokens": 30, "min_new_tokens": 1}]
    # the json evaluate_lvlm.py writes; calculate_score reads the category from image_path.split('/')[-2]
    official = [{"question": r["prompt"], "answer": r["raw_output"], "gt_answers": r["target"],
                 "image_path": f"data/tiny_lvlm/{r['category']}/{Path(r['image_path']).name}"} for r in lines]
    (tmp_path / "results.json").write_text(json.dumps(official))
    assert score(tmp_path, "tiny_lvlm", "--predictions", str(tmp_path / "results.json")) == {"updated": metrics}
    table = build_rows(load_table("E"), load_records(tmp_path / "runs"))
    ours = next(r for r in table if r.label.startswith(MODEL))
    assert ours.values == pytest.approx({"visual_reasoning": metrics["VR"], "visual_perception": metrics["VP"],
                                         "visual_knowledge_acquisition": metrics["VKA"],
                                         "visual_commonsense": metrics["VC"], "object_hallucination": metrics["OH"],
                                         "overall": metrics["overall"]})


# -- VQA -------------------------------------------------------------------------------------------
def test_vqa_variants_submissions_and_evaluators(tmp_path: Path) -> None:
    data = chat_data.write_vqa(tmp_path / "eval")
    variants = "vqav2_val,vqav2_testdev,vizwiz_val,vizwiz_test,textvqa_val"
    assert run(tmp_path, "vqa", data, "--variants", variants, "--evaluator", "official") == 0
    for variant in ("vqav2_val", "vizwiz_val", "textvqa_val"):
        rec, lines = record(tmp_path, "vqa", variant), rows(tmp_path, "vqa", variant)
        types = [r["answer_type"] for r in lines]
        assert rec["metrics"] == vqa_metrics([r["raw_output"] for r in lines], [r["target"] for r in lines],
                                             types if all(types) else None, "official")
        assert rec["options"]["evaluator"] == "official"
        assert_intervals(rec)
    assert {"accuracy", "accuracy_other", "accuracy_yes/no"} == set(record(tmp_path, "vqa", "vqav2_val")["metrics"])
    assert "Reference OCR token: STOP, 0\n" in rows(tmp_path, "vqa", "textvqa_val")[0]["prompt"]
    assert "respond with 'Unanswerable'.\nAnswer" in rows(tmp_path, "vqa", "vizwiz_val")[0]["prompt"]
    dev = json.loads((tmp_path / "runs" / f"{MODEL}__vqa__vqav2_testdev.submission.json").read_text())
    answered = {r["question_id"]: evalai_answer(r["raw_output"]) for r in rows(tmp_path, "vqa", "vqav2_testdev")}
    assert dev == [{"question_id": q, "answer": answered.get(q, "")} for q in (1000, 1001, 1002, 1003, 2000)]
    assert record(tmp_path, "vqa", "vqav2_testdev")["metrics"] == {} == record(tmp_path, "vqa", "vqav2_testdev")["intervals"]
    vizwiz = json.loads((tmp_path / "runs" / f"{MODEL}__vqa__vizwiz_test.submission.json").read_text())
    assert [v["image"] for v in vizwiz] == [f"VizWiz_test_{k:08d}.jpg" for k in range(3)]
    # rescoring: our predictions with each evaluator, and the VQA tool's results json
    mine = predictions_file(tmp_path, "vqa", "vqav2_val")
    for evaluator in ("m4c", "official", "official-py3"):
        lines = rows(tmp_path, "vqa", "vqav2_val")
        expected = vqa_metrics([r["raw_output"] for r in lines], [r["target"] for r in lines],
                               [r["answer_type"] for r in lines], evaluator)
        assert score(tmp_path, "vqa", "--predictions", str(mine), "--evaluator", evaluator) == {"vqav2_val": expected}
    results = [{"question_id": r["question_id"], "answer": r["raw_output"]} for r in rows(tmp_path, "vqa", "vqav2_val")]
    (tmp_path / "results.json").write_text(json.dumps(results))
    official = score(tmp_path, "vqa", "--predictions", str(tmp_path / "results.json"), "--evaluator", "official",
                     "--annotations", str(data / "vqav2" / "v2_mscoco_val2014_annotations.json"),
                     "--questions", str(data / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json"))
    assert official == {"vqav2_val": record(tmp_path, "vqa", "vqav2_val")["metrics"]}


def test_textvqa_question_without_annotation(tmp_path: Path, capsys) -> None:
    data = chat_data.write_vqa(tmp_path / "eval")
    path = data / "textvqa" / "llava_textvqa_val_v051_ocr.jsonl"
    path.write_text(path.read_text().replace("What colour", "What shape", 1))
    assert run(tmp_path, "vqa", data, "--variants", "textvqa_val") == 2
    assert "llava_textvqa_val_v051_ocr.jsonl: line 1 matches no question of TextVQA_0.5.1_val.json" in one_error(capsys)


# -- GQA -------------------------------------------------------------------------------------------
def test_gqa_end_to_end_and_llava_answers(tmp_path: Path, capsys) -> None:
    data = chat_data.write_gqa(tmp_path / "gqa")
    assert run(tmp_path, "gqa", data) == 0
    lines = rows(tmp_path, "gqa", "testdev_balanced")
    questions = json.loads((data / "data" / "testdev_balanced_questions.json").read_text())
    expected = gqa_accuracy({r["id"]: r["raw_output"] for r in lines}, {r["id"]: questions[r["id"]] for r in lines})
    assert record(tmp_path, "gqa", "testdev_balanced")["metrics"] == expected
    assert_intervals(record(tmp_path, "gqa", "testdev_balanced"))
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps({"question_id": r["id"], "text": r["raw_output"]}) + "\n"
                                                    for r in lines))
    assert score(tmp_path, "gqa", "--predictions", str(tmp_path / "answers.jsonl"), "--questions",
                 str(data / "data" / "testdev_balanced_questions.json")) == {"testdev_balanced": expected}
    with open(data / "llava_gqa_testdev_balanced.jsonl", "a") as handle:
        handle.write(json.dumps({"question_id": "404", "image": "n0.jpg", "text": "?"}) + "\n")
    assert run(tmp_path, "gqa", data, out="again") == 2
    assert "question 404 is not in" in one_error(capsys)


# -- captions --------------------------------------------------------------------------------------
def test_caption_end_to_end_and_coco_results(tmp_path: Path) -> None:
    data = chat_data.write_captions(tmp_path / "data")
    assert run(tmp_path, "caption", data, "--datasets", "coco_karpathy_test") == 0
    rec, lines = record(tmp_path, "caption", "coco_karpathy_test"), rows(tmp_path, "caption", "coco_karpathy_test")
    assert set(rec["metrics"]) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}
    assert_intervals(rec, without={"METEOR"})
    assert rec["details"]["generation"][0]["options"] == [{"max_new_tokens": 30, "min_new_tokens": 8}]
    assert all(len(r["token_ids"]) >= 8 for r in lines)
    results = [{"image_id": r["image_id"], "caption": r["raw_output"]} for r in lines]
    (tmp_path / "results.json").write_text(json.dumps(results))
    scored = score(tmp_path, "caption", "--predictions", str(tmp_path / "results.json"), "--annotations",
                   str(data / "coco" / "annotations" / "coco_karpathy_test_gt.json"))
    assert scored == {"coco_karpathy_test": rec["metrics"]}


# -- shared bad input ------------------------------------------------------------------------------
def test_prediction_file_of_another_task_is_refused(tmp_path: Path, capsys) -> None:
    data = chat_data.write_pope(tmp_path / "pope")
    assert run(tmp_path, "pope", data, "--splits", "random") == 0
    assert main(["score", "mme", "--predictions", str(predictions_file(tmp_path, "pope", "random")),
                 "--json", str(tmp_path / "x.json")]) == 2
    assert "predictions of task 'pope'" in one_error(capsys)


def test_bad_image_stops_the_run_or_is_skipped_and_counted(tmp_path: Path, capsys) -> None:
    data = chat_data.write_tiny_lvlm(tmp_path / "updated_datasets")
    victim = data / "Visual_Commonsense" / "images" / "1.png"
    victim.write_bytes(b"not a png")
    assert run(tmp_path, "tiny_lvlm", data) == 2
    line = one_error(capsys)
    assert "1.png" in line and "corrupt or unreadable image" in line
    assert run(tmp_path, "tiny_lvlm", data, "--skip-bad-items", out="skipping") == 0
    rec = record(tmp_path, "tiny_lvlm", "updated", out="skipping")
    assert rec["details"]["skipped_items"] == 1 and rec["n_samples"] == 14
    assert sum("error" in r for r in rows(tmp_path, "tiny_lvlm", "updated", out="skipping")) == 1
