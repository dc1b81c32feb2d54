"""Side interpreter: Tiny LVLM-eHub's VQAEval.evaluate (Multi-Modality-Arena tools.py and InternVL's copy)
and InternVL's calculate_score.py, unmodified, on what diff_tiny_lvlm.py wrote.

usage: side_tiny_lvlm.py OFFICIAL_DIR WORK_DIR
- ``VQAEval().evaluate(answer, gt_answers)`` per case of cases.json (a fresh copy of a list each time: the
  method normalises the caller's list in place);
- ``calculate_score.py --file-path <results json>`` per file under results/, its prints read back
  (each category's fraction and the overall sum, printed with full float repr).
"""
import contextlib
import copy
import importlib.util
import io
import json
import os
import runpy
import sys

official, work = sys.argv[1], sys.argv[2]


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cases = json.load(open(os.path.join(work, "cases.json"), encoding="utf-8"))
out = {}
for name, path in (("mma", os.path.join(official, "tiny_mma", "tools.py")),
                   ("internvl", os.path.join(official, "tiny_internvl", "tools.py"))):
    evaluator = load("tools_" + name, path).VQAEval()
    out[name] = [evaluator.evaluate(c["answer"], copy.deepcopy(c["gt_answers"])) for c in cases]

script = os.path.join(official, "tiny_internvl", "calculate_score.py")
sys.path.insert(0, os.path.dirname(script))  # its `from tools import VQAEval` fallback
scores = {}
for file in sorted(os.listdir(os.path.join(work, "results"))):
    argv, sys.argv = sys.argv, ["calculate_score.py", "--file-path", os.path.join(work, "results", file)]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = argv
    scores[file] = dict((line.rsplit(": ", 1)[0], float(line.rsplit(": ", 1)[1]))
                        for line in printed.getvalue().splitlines() if ": " in line)
out["calculate_score"] = scores
json.dump(out, open(os.path.join(work, "official.json"), "w"))
