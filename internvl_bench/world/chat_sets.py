"""Replicas of the chat benchmarks (Tables E, F, captioning) drawn from the synthetic world, in the real layouts.

Same contract as ``contrastive_sets``: each writer produces exactly the files the task reads for the real
set -- MME's release folder (two yes/no questions per image), POPE's three ``coco_pope_*.json`` splits,
Tiny LVLM's ``<Category>/dataset.json``, LLaVA's ``playground/data/eval`` files for VQAv2 val, VizWiz val,
TextVQA val and GQA testdev, InternVL's caption ``data/`` folder (COCO, Flickr30K, NoCaps). Each returns
its chance levels (captions have none).
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from internvl_bench.metrics.mme import COGNITION, PERCEPTION
from internvl_bench.world import language, questions
from internvl_bench.world.chance import uniform_exact_chance, uniform_vqa_chance
from internvl_bench.world.contrastive_sets import IMAGE_SIZES, Chance, save_image
from internvl_bench.world.scenes import SHAPES, Scene, SceneSpec, render, sample_scene
from tasks.mme import SPLIT_FOLDERS
from tasks.tiny_lvlm import CATEGORIES as CATEGORY_METRICS

#: the scene constraints a subtask's stand-in property needs (see ``questions.mme_pair``)
MME_SPECS = {"celebrity": SceneSpec(max_things=1), "OCR": SceneSpec(digit_probability=1.0),
             "posters": SceneSpec(border_probability=1.0)}
MME_SUBTASKS = PERCEPTION + COGNITION


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _image(scene: Scene, path: Path, rng: random.Random) -> None:
    save_image(render(scene, rng.choice(IMAGE_SIZES)), path)


def write_mme(folder: Path, rng: random.Random, per_subtask: int) -> Chance:
    """The MME release folder: every subtask, ``per_subtask`` images with their Yes and No question."""
    for subtask in MME_SUBTASKS:
        written = 0
        while written < per_subtask:
            scene = sample_scene(rng, MME_SPECS.get(subtask, SceneSpec()))
            pair = questions.mme_pair(subtask, scene, rng)
            if pair is None:
                continue
            stem = f"{written:04d}"
            split = subtask in SPLIT_FOLDERS
            suffix = ".png" if subtask == "code_reasoning" else ".jpg"
            _image(scene, folder / subtask / ("images" if split else "") / f"{stem}{suffix}", rng)
            text = folder / subtask / ("questions_answers_YN" if split else "") / f"{stem}.txt"
            text.parent.mkdir(parents=True, exist_ok=True)
            text.write_text("".join(f"{qa.question}\t{qa.answer}\n" for qa in pair), encoding="utf-8")
            written += 1
    # a fair coin per question: 50% accuracy, both of an image's answers right 25% of the time
    chance = {subtask: 75.0 for subtask in MME_SUBTASKS} | {f"{s}_acc": 50.0 for s in MME_SUBTASKS}
    chance |= {f"{s}_acc_plus": 25.0 for s in MME_SUBTASKS}
    return {("mme", "all"): chance | {"perception": 75.0 * len(PERCEPTION), "cognition": 75.0 * len(COGNITION)}}


def write_pope(folder: Path, rng: random.Random, images: int, per_image: int = 6) -> Chance:
    """``coco_pope_{random,popular,adversarial}.json`` (JSON lines) over ``val2014/``: per image, half the
    questions name present shapes, half absent ones -- drawn uniformly (random), from the shapes most
    frequent in the set (popular) or from those most often seen with the image's shapes (adversarial)."""
    scenes = [sample_scene(rng, SceneSpec(min_things=2)) for _ in range(images)]
    names = [f"COCO_val2014_{600000 + i:012d}.jpg" for i in range(images)]
    for scene, name in zip(scenes, names):
        _image(scene, folder / "val2014" / name, rng)
    frequency = Counter(t.shape for s in scenes for t in s.things)
    together = Counter((a.shape, b.shape) for s in scenes for a in s.things for b in s.things if a.shape != b.shape)
    for split in ("random", "popular", "adversarial"):
        rows = []
        for scene, name in zip(scenes, names):
            present = sorted({t.shape for t in scene.things})
            absent = [s for s in SHAPES if s not in present]
            if split == "popular":
                absent.sort(key=lambda s: -frequency[s])
            elif split == "adversarial":
                absent.sort(key=lambda s: -sum(together[(p, s)] for p in present))
            else:
                rng.shuffle(absent)
            half = per_image // 2
            asked = [rng.choice(present) for _ in range(half)] + absent[:half]
            for shape in asked:
                qa = questions.pope_question(scene, shape)
                rows.append({"question_id": len(rows) + 1, "image": name, "text": qa.question, "label": qa.answer})
        _jsonl(folder / f"coco_pope_{split}.json", rows)
    coin = {"accuracy": 50.0, "precision": 50.0, "recall": 50.0, "f1": 50.0, "yes_ratio": 50.0}
    return {("pope", split): dict(coin) for split in ("random", "popular", "adversarial")}


def write_tiny_lvlm(folder: Path, rng: random.Random, per_category: int) -> Chance:
    """``<Category>/dataset.json`` ([{image_path, question, gt_answers}]) with images beside it."""
    chance = {}
    for category in questions.TINY_LVLM:
        items = []
        while len(items) < per_category:
            scene = sample_scene(rng, SceneSpec(digit_probability=0.6))
            qa = questions.tiny_lvlm_question(category, scene, rng)
            if qa is None:
                continue
            image_path = f"images/{len(items):04d}.png"
            _image(scene, folder / category / image_path, rng)
            items.append({"image_path": image_path, "question": qa.question, "gt_answers": [qa.answer]})
        _json(folder / category / "dataset.json", items)
        chance[CATEGORY_METRICS[category]] = uniform_exact_chance([item["gt_answers"][0] for item in items])
    return {("tiny_lvlm", "updated"): chance | {"overall": sum(chance.values())}}


def _short_questions(rng: random.Random, n: int, spec: SceneSpec = SceneSpec()) -> list[tuple[Scene, questions.QA]]:
    drawn = []
    while len(drawn) < n:
        scene = sample_scene(rng, spec)
        qa = questions.short_answer_question(scene, rng)
        if qa is not None:
            drawn.append((scene, qa))
    return drawn


def _human_answers(answer: str, rng: random.Random) -> list[str]:
    """Ten annotator answers: mostly the truth, now and then a near miss, as crowd answers are."""
    variants = {"left": "left side", "right": "right side", "grey": "gray"}
    return [variants.get(answer, answer) if rng.random() < 0.15 else answer for _ in range(10)]


def write_vqa(folder: Path, rng: random.Random, n: int) -> Chance:
    """LLaVA's ``playground/data/eval``: ``vqav2/`` (v2 val questions + annotations, ``val2014/``),
    ``vizwiz/`` (``val.json``, ``val/``; a third of the questions ask after absent shapes: 'unanswerable'),
    ``textvqa/`` (TextVQA 0.5.1 val, LLaVA's OCR-token question file, ``train_images/``)."""
    vq = folder / "vqav2"
    qs, anns = [], []
    for k, (scene, qa) in enumerate(_short_questions(rng, n)):
        image_id, qid = 700000 + k, 7000000 + k
        _image(scene, vq / "val2014" / f"COCO_val2014_{image_id:012d}.jpg", rng)
        qs.append({"image_id": image_id, "question": qa.question, "question_id": qid})
        kind = "number" if qa.answer.isdigit() else "other"
        anns.append({"question_type": "what", "multiple_choice_answer": qa.answer, "answer_type": kind,
                     "image_id": image_id, "question_id": qid,
                     "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                 for i, a in enumerate(_human_answers(qa.answer, rng))]})
    _json(vq / "v2_OpenEnded_mscoco_val2014_questions.json", {"task_type": "Open-Ended", "data_type": "mscoco",
                                                               "data_subtype": "val2014", "questions": qs})
    _json(vq / "v2_mscoco_val2014_annotations.json", {"data_type": "mscoco", "data_subtype": "val2014",
                                                       "annotations": anns})
    vz, items = folder / "vizwiz", []
    for k, (scene, qa) in enumerate(_short_questions(rng, n)):
        name = f"VizWiz_val_{k:08d}.jpg"
        _image(scene, vz / "val" / name, rng)
        if k % 3 == 0:
            absent = rng.choice([s for s in SHAPES if not scene.has(s)])
            question, answers, kind, answerable = f"What colour is the {absent}?", ["unanswerable"] * 10, "unanswerable", 0
        else:
            question, answers = qa.question, _human_answers(qa.answer, rng)
            kind, answerable = ("number" if qa.answer.isdigit() else "other"), 1
        items.append({"image": name, "question": question, "answerable": answerable, "answer_type": kind,
                      "answers": [{"answer": a, "answer_confidence": "yes"} for a in answers]})
    _json(vz / "val.json", items)
    tv, data, llava = folder / "textvqa", [], []
    for k in range(n):
        scene = sample_scene(rng, SceneSpec(digit_probability=1.0))
        if scene.digit is None:
            scene = sample_scene(rng, SceneSpec(max_things=2, digit_probability=1.0))
        image_id = f"{0x5e0000 + k:016x}"
        _image(scene, tv / "train_images" / f"{image_id}.jpg", rng)
        truth = str(scene.digit) if scene.digit is not None else "none"
        question = "what number is written in the image?"
        tokens = [truth, rng.choice(SHAPES)]
        rng.shuffle(tokens)
        data.append({"question": question, "image_id": image_id, "image_classes": ["shape"],
                     "question_id": 80000 + k, "answers": [truth] * 10, "set_name": "val"})
        llava.append({"question_id": image_id, "image": f"{image_id}.jpg",
                      "text": f"What number is written in the image?\nReference OCR token: {', '.join(tokens)}\n"
                              f"{questions.SHORT}"})
    _json(tv / "TextVQA_0.5.1_val.json", {"dataset_type": "val", "dataset_name": "textvqa",
                                           "dataset_version": "0.5.1", "data": data})
    _jsonl(tv / "llava_textvqa_val_v051_ocr.jsonl", llava)
    return {("vqa", "vqav2_val"): {"accuracy": uniform_vqa_chance([[a["answer"] for a in x["answers"]] for x in anns])},
            ("vqa", "vizwiz_val"): {"accuracy": uniform_vqa_chance([[a["answer"] for a in x["answers"]] for x in items])},
            ("vqa", "textvqa_val"): {"accuracy": uniform_vqa_chance([d["answers"] for d in data])}}


def write_gqa(folder: Path, rng: random.Random, n: int) -> Chance:
    """LLaVA's ``gqa/``: ``llava_gqa_testdev_balanced.jsonl``, ``data/testdev_balanced_questions.json``
    (balanced questions plus some unbalanced ones, which the scorer must skip), ``data/images/``."""
    rows, official = [], {}
    for k, (scene, qa) in enumerate(_short_questions(rng, n)):
        qid, image = f"2{k:08d}", f"n{810000 + k}"
        _image(scene, folder / "data" / "images" / f"{image}.jpg", rng)
        rows.append({"question_id": qid, "image": f"{image}.jpg", "text": f"{qa.question}\n{questions.SHORT}",
                     "category": "default"})
        official[qid] = {"imageId": image, "question": qa.question, "answer": qa.answer, "isBalanced": True}
        if k % 10 == 0:
            official[f"3{k:08d}"] = {"imageId": image, "question": "Is it unbalanced?", "answer": "yes",
                                     "isBalanced": False}
    _jsonl(folder / "llava_gqa_testdev_balanced.jsonl", rows)
    _json(folder / "data" / "testdev_balanced_questions.json", official)
    truths = [q["answer"] for q in official.values() if q["isBalanced"]]
    return {("gqa", "testdev_balanced"): {"accuracy": uniform_exact_chance(truths)}}


def _references(scene: Scene) -> list[str]:
    """Five reference captions of a scene, phrased as annotators vary them."""
    caption = language.describe(scene, "en")
    return [caption, f"A picture of {caption}.", f"an image showing {caption}", f"{caption[0].upper()}{caption[1:]}.",
            f"there is {caption}"]


def write_captions(folder: Path, rng: random.Random, n: int) -> Chance:
    """InternVL's caption ``data/``: COCO Karpathy test (listing + COCO-format references, ``val2014/``),
    Flickr30K Karpathy test and NoCaps val (COCO-format files with their images)."""
    coco = folder / "coco"
    listing, images, annotations = [], [], []
    for k in range(n):
        scene, image_id = sample_scene(rng), 900000 + k
        name = f"val2014/COCO_val2014_{image_id:012d}.jpg"
        _image(scene, coco / name, rng)
        references = _references(scene)
        listing.append({"image": name, "caption": references, "image_id": str(image_id)})
        images.append({"id": image_id, "file_name": name.split("/")[1]})
        annotations += [{"image_id": image_id, "id": 5 * k + j, "caption": c} for j, c in enumerate(references)]
    _json(coco / "annotations" / "coco_karpathy_test.json", listing)
    _json(coco / "annotations" / "coco_karpathy_test_gt.json",
          {"images": images, "annotations": annotations, "type": "captions", "info": {}, "licenses": []})
    for sub, file_name, image_dir in (("flickr30k", "flickr30k_test_karpathy.json", "."),
                                      ("nocaps", "nocaps_val_4500_captions.json", "images")):
        images, annotations = [], []
        for k in range(n):
            scene = sample_scene(rng)
            name = f"{4000 + k}.jpg"
            _image(scene, folder / sub / image_dir / name, rng)
            images.append({"id": k, "file_name": name})
            annotations += [{"image_id": k, "id": 5 * k + j, "caption": c} for j, c in enumerate(_references(scene))]
        _json(folder / sub / file_name, {"images": images, "annotations": annotations})
    return {}
