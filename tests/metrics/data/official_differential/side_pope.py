"""Side interpreter: eval_pope.py (LLaVA and InternVL copies), unmodified, on what diff_pope.py wrote.

usage: side_pope.py OFFICIAL_DIR WORK_DIR
- function level: ``eval_pope(answers, label_file)`` per case in cases.json; the printed counts and metrics
  (full float repr) are read back, and each answer's parsed 'yes'/'no' (the function rewrites
  ``answer['text']`` in place). A ZeroDivisionError is recorded with the line that raised it.
- script level: the ``__main__`` block per trial folder (annotation dir of coco_pope_<category>.json,
  question file with categories, result file: jsonl for LLaVA, a JSON list for InternVL), read back per
  category from the prints.
"""
import contextlib
import importlib.util
import io
import json
import os
import runpy
import sys
import traceback

official, work = sys.argv[1], sys.argv[2]
COPIES = {"llava": os.path.join(official, "pope_llava", "eval_pope.py"),
          "internvl": os.path.join(official, "pope_internvl", "eval_pope.py")}
KEYS = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F1 score": "f1", "Yes ratio": "yes_ratio"}


def parse_printed(text):
    """Per printed block: counts and metrics."""
    blocks, current, lines = [], None, text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Category: "):
            current = {"category": line.split(",")[0].split(": ")[1]}
            blocks.append(current)
        elif line.startswith("TP\tFP\tTN\tFN"):
            if current is None or "TP" in current:
                current = {}
                blocks.append(current)
            current.update(zip(["TP", "FP", "TN", "FN"], map(int, lines[index + 1].split("\t"))))
        elif ": " in line and line.split(": ")[0] in KEYS:
            current[KEYS[line.split(": ")[0]]] = float(line.split(": ")[1])
    return blocks


def failure(error):
    frames = traceback.extract_tb(error.__traceback__)
    return {"error": type(error).__name__, "line": frames[-1].line}


results = {}
for name, path in COPIES.items():
    spec = importlib.util.spec_from_file_location("eval_pope_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = {"cases": [], "trials": {}}
    for number, case in enumerate(json.load(open(os.path.join(work, "cases.json")))):
        label_file = os.path.join(work, "labels_%d.jsonl" % number)
        with open(label_file, "w") as f:
            f.writelines(json.dumps({"question_id": i, "label": label}) + "\n" for i, label in enumerate(case["labels"]))
        answers = [{"question_id": i, "text": text} for i, text in enumerate(case["responses"])]
        printed = io.StringIO()
        record = {}
        try:
            with contextlib.redirect_stdout(printed):
                module.eval_pope(answers, label_file)
        except Exception as error:  # ZeroDivisionError on a zero denominator, or the error cases
            record.update(failure(error))
        blocks = parse_printed(printed.getvalue())
        record.update(blocks[0] if blocks else {})
        record["parsed"] = [a["text"] for a in answers]
        out["cases"].append(record)
    trials_dir = os.path.join(work, "trials")
    for trial in sorted(os.listdir(trials_dir)):
        folder = os.path.join(trials_dir, trial)
        result_file = os.path.join(folder, "answers.jsonl" if name == "llava" else "answers.json")
        argv = sys.argv
        sys.argv = ["eval_pope.py", "--annotation-dir", os.path.join(folder, "coco"),
                    "--question-file", os.path.join(folder, "questions.jsonl"), "--result-file", result_file]
        printed = io.StringIO()
        record = {}
        try:
            with contextlib.redirect_stdout(printed):
                runpy.run_path(path, run_name="__main__")
        except ZeroDivisionError as error:
            record.update(failure(error))
        finally:
            sys.argv = argv
        record["blocks"] = parse_printed(printed.getvalue())
        out["trials"][trial] = record
    results[name] = out

json.dump(results, open(os.path.join(work, "official.json"), "w"))
