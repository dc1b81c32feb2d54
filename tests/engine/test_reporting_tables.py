"""Tables through tabulate: bold as the paper prints it, lower-is-better columns, booktabs LaTeX that compiles."""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from internvl_bench.cli import main
from internvl_bench.paper_tables import TABLES, build_rows, load_table
from internvl_bench.records import ResultRecord, write_record
from internvl_bench.table_render import render
from tests.fixtures.paper_records import paper_records


def cells(markdown: str, label: str) -> list[str]:
    """The cells of the Markdown row whose first cell is ``label``."""
    for line in markdown.splitlines():
        parts = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if parts[0] == label:
            return parts[1:]
    raise AssertionError(f"no row {label!r} in\n{markdown}")


def test_markdown_is_a_pipe_table_with_the_papers_best_in_bold() -> None:
    text = render(load_table("A"), [], "md")
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| method"))
    assert re.fullmatch(r"\|:-+(\|-+:)+\|", lines[header + 1])  # label left, numbers right
    assert cells(text, "InternVL-G (ours)")[0] == "**98.6**"  # best EN of the paper
    assert cells(text, "M-CLIP [11]")[0] == "92.4" and cells(text, "MURAL [49]")[0] == "-"


def test_ours_is_bold_only_when_it_beats_every_paper_row() -> None:
    table = load_table("A")
    g = next(r for r in table["rows"] if r.get("model") == "internvl-g")["values"]
    records = [ResultRecord(task="xtd", variant=lang, model="internvl-g", n_samples=10, options={}, provenance={},
                            metrics={"i2t_R@10": g[lang] + shift})
               for lang, shift in (("en", 0.5), ("es", 0.0), ("fr", -0.3), ("zh", 0.04))]
    text = render(table, records, "md")
    ours = cells(text, "internvl-g (this run)")
    assert ours[:4] == ["**99.1**", "97.7", "96.2", "96.7"]  # a tie, or a gain lost to rounding, is no new best
    assert cells(text, "InternVL-G (ours)")[0] == "**98.6**"  # the paper's best stays bold
    assert cells(text, "difference")[:3] == ["+0.5", "+0.0", "-0.3"]


def test_lower_is_better_is_table_data_and_ties_are_all_bold() -> None:
    table = load_table("G")
    assert {c["key"]: c.get("better", "higher") for c in table["columns"]} == {
        "vit_ms": "lower", "qllama_ms": "lower", "text_ms": "lower", "total_ms": "lower", "fps": "higher"}
    rows = {r.label: r for r in build_rows(table, [])}
    c224, g224 = rows["InternVL-C (224)"], rows["InternVL-G (224)"]
    assert {"vit_ms", "text_ms"} <= c224.bold and {"vit_ms", "text_ms"} <= g224.bold  # 15.5 and 4.9 both
    assert "total_ms" in c224.bold and "total_ms" not in g224.bold  # 20.4 ms beats 28.6 ms
    assert "fps" in c224.bold and "fps" not in g224.bold  # 48.9 FPS beats 35.0
    assert "total_ms" in rows["InternVL-C (336)"].bold  # each image size is its own group: 40.1 ms is bold too
    flipped = copy.deepcopy(table)
    flipped["columns"][0]["better"] = "sideways"
    with pytest.raises(Exception, match="'better' is 'sideways'"):
        build_rows(flipped, [])


def test_without_paper_rows_nothing_is_bold() -> None:
    record = ResultRecord(task="caption", variant="coco_karpathy_test", model="m", metrics={"CIDEr": 120.0},
                          n_samples=5, options={}, provenance={})
    assert cells(render(load_table("caption"), [record], "md"), "m (this run)")[0] == "120.0"


def latex_body(latex: str) -> list[str]:
    """The lines between ``\\midrule`` after the header and ``\\bottomrule``, separators excluded."""
    lines = latex.splitlines()
    start, end = lines.index(r"\midrule"), lines.index(r"\bottomrule")
    return [line for line in lines[start + 1:end] if line != r"\midrule"]


@pytest.fixture(scope="module")
def every_table_in_latex() -> dict[str, str]:
    """Every table with ours shifted by -0.25 (negative differences, intervals) and an awkwardly named model."""
    texts = {}
    for letter in TABLES:
        table = load_table(letter)
        records = paper_records(table, shift=-0.25)
        odd = ResultRecord(task=table.get("task") or "vqa", variant=table["columns"][0].get("variant") or "x",
                           model="openclip:ViT_B#1 & 50%", checkpoint="/w/{a}~b^c.pt", n_samples=1, options={},
                           provenance={}, metrics={table["columns"][0].get("metric", "m"): 12.5},
                           intervals={table["columns"][0].get("metric", "m"): [10.0, 15.0]})
        texts[letter] = render(table, records + [odd], "latex", ci=True)
    return texts


@pytest.mark.parametrize("letter", TABLES)
def test_latex_has_booktabs_rules_and_no_colortbl(every_table_in_latex: dict[str, str], letter: str) -> None:
    latex = every_table_in_latex[letter]
    for rule in (r"\toprule", r"\bottomrule", r"\begin{tabular}", r"\end{tabular}", r"\caption{"):
        assert latex.count(rule) == 1, rule
    assert latex.index(r"\toprule") < latex.index(r"\midrule") < latex.index(r"\bottomrule")
    for banned in (r"\hline", r"\rowcolor", r"\cellcolor", "colortbl", "xcolor", r"\usepackage"):
        assert banned not in latex
    columns = len(load_table(letter)["columns"])
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", latex).group(1)
    assert spec == "l" + "c" * columns
    body = latex_body(latex)
    assert body, "no rows"
    for line in body:  # every row: one cell per column, ended by \\
        assert line.rstrip().endswith(r"\\") and len(re.findall(r"(?<!\\)&", line)) == columns, line
    assert any(r"\textbf{" in line for line in body) == bool(load_table(letter)["rows"])


def test_latex_cells_escape_names_and_typeset_minus_signs(every_table_in_latex: dict[str, str]) -> None:
    latex = every_table_in_latex["A"]
    assert r"openclip:ViT\_B\#1 \& 50\%@\{a\}\textasciitilde{}b\textasciicircum{}c.pt (this run)" in latex
    assert r"12.5 {\scriptsize [10.0, 15.0]}" in latex
    assert r"$-$0.2" in next(line for line in latex_body(latex) if line.strip().startswith("difference"))
    assert r"VQA$^\mathrm{T}$" in every_table_in_latex["F"]  # a column's latex_label
    assert r"Video$\rightarrow$Text R@1" in every_table_in_latex["C"]


def _booktabs_available() -> bool:
    if not shutil.which("pdflatex") or not shutil.which("kpsewhich"):
        return False
    return subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True, text=True).stdout.strip() != ""


@pytest.mark.skipif(not _booktabs_available(), reason="pdflatex with booktabs is not installed (.ci/run installs it)")
def test_every_table_compiles_with_booktabs_alone(every_table_in_latex: dict[str, str], tmp_path: Path) -> None:
    document = "\n".join([r"\documentclass{article}", r"\usepackage{booktabs}", r"\begin{document}",
                          *[every_table_in_latex[letter] + r"\clearpage" for letter in TABLES], r"\end{document}"])
    (tmp_path / "tables.tex").write_text(document, encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "tables.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stdout.splitlines() if line.startswith("!")]
    assert done.returncode == 0 and not errors, errors or done.stdout[-2000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 10_000
    assert "Missing character" not in (tmp_path / "tables.log").read_text(encoding="utf-8", errors="replace")


def test_tables_cli_writes_latex_and_plots(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    for record in paper_records(load_table("A"), shift=0.3):
        write_record(record, runs)
    out = tmp_path / "tables"
    assert main(["tables", "--table", "A", "--format", "latex", "--ci", "--plots", "--runs", str(runs),
                 "--out-dir", str(out)]) == 0
    written = capsys.readouterr().out
    assert r"\toprule" in (out / "table_a.tex").read_text(encoding="utf-8")
    for name in ("table_a.png", "table_a.pdf", "table_a_diff.png", "table_a_diff.pdf"):
        assert f"wrote {out / name}" in written and (out / name).stat().st_size > 1000
