"""Tiny LVLM-eHub: internvl_bench.metrics.tiny_lvlm (and tasks.tiny_lvlm.category_scores) against
VQAEval.evaluate of Multi-Modality-Arena's tiny_lvlm_evaluation/utils/tools.py, InternVL's copy
(internvl_chat/eval/tiny_lvlm/tools.py) and InternVL's calculate_score.py.

Inputs: tiny_lvlm_cases.json (35 cases) and seeded random cases: sentence answers built from a word pool
(partial words, plurals, number words, articles, contractions, hyphens, digit commas, periods), ground
truths a string or a list of one to three. Aggregation: random results files (the json list
evaluate_lvlm.py writes, the category in image_path) through calculate_score.py.
"""
from __future__ import annotations

import random
import shutil

from common import Tally, case_file, dump, load, report, run_side, workdir

from internvl_bench.metrics.tiny_lvlm import tiny_lvlm_correct
from tasks.tiny_lvlm import CATEGORIES, category_scores

SEED = 20240914
N_RANDOM = 1500
N_FILES = 40
WORDS = ["cat", "cats", "category", "dog", "two", "2", "three", "3", "the", "a", "an", "is", "It", "There", "red",
         "Red.", "RED", "blue", "hot", "dog", "hot-dog", "don't", "dont", "know", "1,000", "1000", "3.5", "well-known",
         "yes", "Yes,", "no", "No.", "twas", "'twas", "C#", "c#", "$5", "costs$5", "caf\u00e9", "caf", "New", "York",
         "new-york", "t-shirt", "shirt", "(left)", "left", "right?", "mr.", "Smith.", "\u0130stanbul", "istanbul",
         "\u0663", "three-fourths", "\n", "\t", ":", "...", "none", "0", "zero", "ten", "10", "it's", "its"]
TRUTHS = ["cat", "2", "two", "three", "the", "a", "'twas", "twas", "C#", "red.", "RED", "New York", "new-york",
          "1,000", "1000", "3.5", "3", "don't know", "dont", "", "?", "yes", "no", "mr. smith", "t-shirt", "hot dog",
          "well known", "$5", "caf", "caf\u00e9", "istanbul", "\u0130stanbul", "left", "(left)", "none", "0", "10",
          "it's", "its", "shirt", "York"]


def random_case(rng: random.Random) -> dict:
    words = [rng.choice(WORDS) for _ in range(rng.randint(0, 8))]
    answer = "".join(w + rng.choice([" ", " ", " ", ", ", ". ", "", "-"]) for w in words).rstrip(" ")
    truths = rng.choice(TRUTHS) if rng.random() < 0.4 else rng.sample(TRUTHS, rng.randint(1, 3))
    return {"answer": answer, "gt_answers": truths}


def main() -> None:
    rng = random.Random(SEED)
    work = workdir("tiny_lvlm")
    shutil.rmtree(work / "results", ignore_errors=True)
    (work / "results").mkdir()
    cases = [{"answer": c["answer"], "gt_answers": c["gt_answers"]} for c in case_file("tiny_lvlm_cases.json")["cases"]]
    cases += [random_case(rng) for _ in range(N_RANDOM)]
    dump(work / "cases.json", cases)
    files = {}
    for n in range(N_FILES):
        items = [dict(random_case(rng), question="?", image_path=f"updated_datasets/{category}/{i}.jpg")
                 for category in CATEGORIES for i in range(rng.randint(1, 60))]
        rng.shuffle(items)
        files[f"results_{n:03d}.json"] = items
        dump(work / "results" / f"results_{n:03d}.json", items)
    run_side("side_tiny_lvlm.py", work)
    official = load(work / "official.json")

    tallies = []
    for name, source in (("mma", "Multi-Modality-Arena tiny_lvlm_evaluation/utils/tools.py VQAEval.evaluate"),
                         ("internvl", "InternVL internvl_chat/eval/tiny_lvlm/tools.py VQAEval.evaluate")):
        tally = Tally("tiny_lvlm", source)
        for case, theirs in zip(cases, official[name]):
            tally.same("correct", tiny_lvlm_correct(case["answer"], case["gt_answers"]), theirs == 1, case)
        tallies.append(tally)
    tally = Tally("tiny_lvlm aggregation", "InternVL internvl_chat/eval/tiny_lvlm/calculate_score.py")
    for file, items in files.items():
        ours = category_scores([(item["image_path"].split("/")[-2], tiny_lvlm_correct(item["answer"], item["gt_answers"]))
                                for item in items])
        theirs = official["calculate_score"][file]
        for category, metric in CATEGORIES.items():
            # the script prints the fraction correct / n; ours is 100 * correct / n
            tally.number("category (x100)", ours[metric], 100 * theirs[category], (file, category), tol=1e-9)
        tally.number("overall (x100)", ours["overall"], 100 * theirs["Overall"], file, tol=1e-9)
    tallies.append(tally)
    report(*tallies, n_cases=len(cases), n_files=len(files), n_items=sum(len(i) for i in files.values()))


if __name__ == "__main__":
    main()
