"""Run every differential driver; print one row per (scorer, official copy) and write all summaries to
$DIFF_WORK/results.jsonl. Exit status 1 if any comparison has an unexplained mismatch, except the sets
that are expected to differ (the Python 2/3 probes of the VQA master tool, and the MME tool under a
scikit-learn that rejects empty inputs)."""
from __future__ import annotations

import json
import subprocess
import sys

import hashlib

from common import HERE, OFFICIAL, WORK

DRIVERS = ["diff_mme.py", "diff_pope.py", "diff_vqa.py", "diff_tiny_lvlm.py", "diff_gqa.py"]


def expected_to_differ(summary: dict) -> bool:
    return "probes" in summary["scorer"] or ("scikit-learn 1.3" not in summary["official"] and summary["scorer"] == "mme")


def check_sources() -> None:
    """Every official file of sources.json in place, with the recorded checksum (warn on a change)."""
    for source in json.loads((HERE / "sources.json").read_text()):
        path = OFFICIAL / source["dest"]
        if not path.is_file():
            raise SystemExit(f"missing {path}: {source['repo']}@{source['snapshot_commit'][:12]}:{source['path']}")
        if hashlib.md5(path.read_bytes()).hexdigest() != source["md5"]:
            print(f"warning: {path} differs from the version compared in OFFICIAL_DIFFERENTIAL.md", file=sys.stderr)


def main() -> int:
    check_sources()
    WORK.mkdir(parents=True, exist_ok=True)
    summaries = []
    for driver in DRIVERS:
        done = subprocess.run([sys.executable, str(HERE / driver)], capture_output=True, text=True, cwd=HERE)
        if done.returncode:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"{driver} failed")
        summaries += [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    with open(WORK / "results.jsonl", "w") as f:
        f.writelines(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in summaries)
    failed = False
    for s in summaries:
        compared = sum(s["compared"].values())
        worst = max(s["max_abs_diff"].values(), default=0.0)
        flag = "ok" if not s["n_mismatches"] else ("differs (expected)" if expected_to_differ(s) else "MISMATCH")
        failed |= flag == "MISMATCH"
        print(f"{s['scorer']:<40} {s['official'][:70]:<70} compared={compared:<6} max_abs_diff={worst:<10.3g} "
              f"mismatches={s['n_mismatches']:<4} {flag}")
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
