"""MME: internvl_bench.metrics.mme against the eval_tool's calculation.py (BradyFU and InternVL copies).

Inputs: mme_cases.json (parse probes, score cases, error cases) and seeded random cases: yes/no labels and
responses drawn from a pool of traps for the 4-character prefix rule, plus random strings of y/e/s/n/o,
spaces and punctuation. Each case is written as the tool's results folder (one ``<subtask>.txt`` per
subtask: image, question, label, response, tab-separated, an image's two questions on consecutive lines).
"""
from __future__ import annotations

import os
import random
import shutil

from common import SIDE_PYTHON, Tally, case_file, dump, load, report, run_side, workdir

from internvl_bench.errors import BenchError
from internvl_bench.metrics.mme import COGNITION, PERCEPTION, MMEItem, mme_scores, parse_mme

#: interpreters for the tool, one run each: its precision/recall calls fail on an empty list (a subtask
#: answered "other" throughout) from some scikit-learn release on, so a period one (1.3.2) runs it too
MME_PYTHONS = os.environ.get("MME_PYTHONS", f"/tmp/offvenv_sk13/bin/python,{SIDE_PYTHON}").split(",")
COPIES = {"bradyfu": "BradyFU eval_tool/calculation.py", "internvl": "InternVL internvl_chat/eval/mme/calculation.py"}
SEED = 20240911
N_RANDOM_CASES = 300
N_RANDOM_PARSE = 600
TRAPS = ["Yes", "No", "yes", "no", "YES", "NO", " No.", " yes", "  yes", "   yes", "Yeah", "yep", "nope", "not sure",
         "Yes, there is", "No, there is not", "I think no", "I think yes", "The answer is No", "eyes", "Eyes",
         "", "n", "y", "ye", "No yes", "noyes", "Yesno", "no, yes", "None", "Unknown", "Snow", "YES!", "is yes",
         "Yesterday", "\u0130yes", "Yes.", "No.", "no.", "yes ", "no ", "Nothing", "Know", "a no", "ano", "on",
         "Maybe", "yes\u00a0", "\u00a0yes", "N/A", "Yes and no", "nO", "yEs", "1", "true", "false"]


def random_response(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(TRAPS)
    return "".join(rng.choice("yesnoYESNO .,!") for _ in range(rng.randint(0, 7)))


def random_case(rng: random.Random) -> list[list[str]]:
    """Rows [subtask, image, label, response]; subtasks interleaved, each image's two questions in order."""
    subtasks = list(PERCEPTION + COGNITION) if rng.random() < 0.3 else rng.sample(PERCEPTION + COGNITION,
                                                                                  rng.randint(1, 6))
    per_subtask = []
    for subtask in subtasks:
        rows = []
        for image in range(rng.randint(1, 6)):
            labels = ["Yes", "No"] if rng.random() < 0.7 else [rng.choice(["Yes", "No"]) for _ in range(2)]
            rows += [[subtask, f"{subtask}_{image}.jpg", label, random_response(rng)] for label in labels]
        per_subtask.append(rows)
    rows = []
    while any(per_subtask):  # interleave subtasks image by image, as mixed result lists come
        source = rng.choice([r for r in per_subtask if r])
        rows += [source.pop(0), source.pop(0)]
    return rows


def items_of(rows):
    return [MMEItem(subtask=s, image=i, question=f"question {n}?", label=l, response=r)
            for n, (s, i, l, r) in enumerate(rows)]


def write_folder(folder, rows) -> None:
    folder.mkdir(parents=True)
    by_subtask: dict[str, list[str]] = {}
    for n, (subtask, image, label, response) in enumerate(rows):
        assert "\t" not in response and "\n" not in response, "the txt format cannot hold this response"
        by_subtask.setdefault(subtask, []).append(f"{image}\tquestion {n}?\t{label}\t{response}\n")
    for subtask, lines in by_subtask.items():
        (folder / f"{subtask}.txt").write_text("".join(lines))
    dump(folder / "subtasks.json", sorted(by_subtask))


def main() -> None:
    rng = random.Random(SEED)
    data = case_file("mme_cases.json")
    work = workdir("mme")
    shutil.rmtree(work / "cases", ignore_errors=True)
    parse = [c["response"] for c in data["parse"]] + [random_response(rng) for _ in range(N_RANDOM_PARSE)]
    dump(work / "parse.json", parse)
    cases = {f"file_{n:02d}": c["items"] for n, c in enumerate(data["cases"])}
    cases |= {f"rand_{n:03d}": random_case(rng) for n in range(N_RANDOM_CASES)}
    errors = {f"err_{n:02d}": c["items"] for n, c in enumerate(data["errors"])}
    for name, rows in (cases | errors).items():
        write_folder(work / "cases" / name, rows)
    runs = []
    for number, python in enumerate(MME_PYTHONS):
        run_side("side_mme.py", work, f"official_{number}.json", python=python)
        official = load(work / f"official_{number}.json")
        sklearn = official.pop("sklearn")
        runs += [(f"{COPIES[name]} (scikit-learn {sklearn})", theirs) for name, theirs in official.items()]

    tallies = []
    for source, theirs in runs:
        tally = Tally("mme", source)
        for response, label in zip(parse, theirs["parse"]):
            tally.same("parse", parse_mme(response), label, response)
        for name, rows in cases.items():
            result = theirs["cases"][name]
            ours = mme_scores(items_of(rows))
            if "error" in result:
                tally.mismatches.append({"metric": "run", "case": name, "official": result["error"]})
                continue
            got = result["metrics"]
            for key, value in ours.items():
                their_key = {"perception": "group:Perception", "cognition": "group:Cognition"}.get(key, key)
                kind = ("group" if key in ("perception", "cognition") else "acc_plus" if key.endswith("_acc_plus")
                        else "acc" if key.endswith("_acc") else "score")
                tally.number(kind, value, got.get(their_key), name)
            for group, key in (("Perception", "perception"), ("Cognition", "cognition")):
                if key not in ours:  # the tool prints 0 for a group none of whose files it read
                    tally.same("absent group", 0.0, got.get("group:" + group), name)
        for name, rows in errors.items():
            result = theirs["cases"][name]
            try:
                mme_scores(items_of(rows))
                ours_outcome = "scored"
            except BenchError as error:
                ours_outcome = f"BenchError: {error}"
            theirs_outcome = result.get("error") or {k: v for k, v in result["metrics"].items() if not k.endswith("_other_num")}
            tally.notes.append(f"error case {name}: ours {ours_outcome!r}; tool {theirs_outcome!r}")
        tallies.append(tally)
    report(*tallies, n_parse=len(parse), n_cases=len(cases),
           n_items=sum(len(r) for r in cases.values()))


if __name__ == "__main__":
    main()
