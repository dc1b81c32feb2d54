"""``make demo``: the whole XTD pipeline offline -- sample data, a tiny model, records, Table A.

Nothing is downloaded: the data are generated in the real XTD layout and the model is a tiny
InternVL-C (the same InternViT + QLLaMA code as the real one, tiny config, seeded random weights,
a small bundled SentencePiece tokenizer), so the retrieval numbers are near chance. What the demo
shows is the path a real run takes, end to end.
"""
from __future__ import annotations

from pathlib import Path

from internvl_bench.records import load_records
from internvl_bench.reporting import load_table, render
from internvl_bench.runner import RunConfig, run_task
from internvl_bench.samples import write_xtd_sample

DEMO_MODEL = "internvl-c-tiny"


def run_demo(workdir: Path) -> str:
    """Generate data under ``workdir``, evaluate the tiny model on all 8 languages, return Table A."""
    data = write_xtd_sample(Path(workdir) / "xtd")
    runs = Path(workdir) / "runs"
    config = RunConfig(data_root=data, output_dir=runs, cache_dir=Path(workdir) / "cache", device="cpu", batch_size=8, workers=1)
    run_task("xtd", DEMO_MODEL, config)
    return render(load_table("A"), load_records(runs), "md")
