"""Zero-shot image classification on the 20 datasets of Table B, plus ImageNet-1K.

Paper: InternVL supplementary Table B (top-1 accuracy on 20 datasets); protocol of the official
InternVL clip_benchmark fork. Data: the CLIP_benchmark webdatasets (``clip-benchmark/wds_<name>`` on
the Hugging Face hub), read by ``internvl_bench.webdataset``.

Layout under ``--data-root DIR``: one folder per dataset, named by the variant (``DIR/cifar10``,
``DIR/cars``, ...), each in the webdataset layout (``test/nshards.txt``, ``test/0.tar`` ...,
``classnames.txt``, ``zeroshot_classification_templates.txt``). When one dataset is named, DIR may
be that dataset's folder itself. Any name not in ``HUB_NAMES`` is a user's own dataset in the same
layout. ``internvl-bench prepare zeroshot_classification --data-root DIR --download`` fetches every
dataset (or only DIR's own when DIR is named after one, e.g. ``DIR=data/cifar10``) at the hub's
current commit, which it records in ``hub_revision.txt``.

Protocol:
- Class names and templates come from the dataset's own files, never from this code.
- Classifier: every template formatted with every class name, encoded in large batches as one flat
  list (class-major), each embedding L2-normalised, averaged per class, re-normalised. The text
  embeddings are cached by the runner keyed by model fingerprint and the exact prompt texts, so a
  changed class list or template file never reuses a stale classifier.
- Images: resize the short side and centre-crop (``crop``, CLIP_benchmark's classification
  transform); logits = 100 * image @ classifier.T; metrics ``acc1``, ``acc5``, ``mean_per_class_recall``
  (Table B reports ``acc1``), each with a bootstrap interval over resampled images (mean per-class
  recall recomputed on each resample; ``acc5``'s is null below five classes, like its value).
- Birdsnap: only 1,845 of the 2,443 test images could be downloaded; the fork reads them from the
  folder layout ``test_images_valid.txt`` (header ``path``, then ``Species_Dir/NNNN.jpg``) plus
  ``species.txt`` (tab-separated, header; class name = column 2, folder = last column), which this
  task also accepts. Templates come from ``zeroshot_classification_templates.txt`` beside them; the
  fork's template table has no Birdsnap entry, so it uses the ImageNet-1K templates: put those there.
- VOC2007: single-label object crops (one sample per annotated box), which is what ``wds_voc2007``
  holds (the fork's ``PASCALVoc2007Cropped``); the multi-label variant is ``wds_voc2007_multilabel``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from internvl_bench.data import ImageFileSource, ImageSource, read_lines
from internvl_bench.errors import BenchError
from internvl_bench.metrics.classification import classification_metrics, classification_statistic, target_ranks
from internvl_bench.runner import RunContext
from internvl_bench.task import Task, TaskResult, register_task, split_list
from internvl_bench.webdataset import WebDatasetFolder, download_from_hub

#: variant name (CLIP_benchmark's) -> hub webdataset ``clip-benchmark/wds_<hub name>``. Names follow the
#: fork's ``benchmark/webdatasets.txt`` (``wds/vtab/x`` -> ``vtab-x``); ``food101`` and ``birdsnap`` are
#: not in that list: ``wds_food101`` exists on the hub, ``wds_birdsnap`` could not be confirmed offline,
#: so Birdsnap is best read from the fork's folder layout (see above).
HUB_NAMES = {
    "cifar10": "vtab-cifar10",
    "cifar100": "vtab-cifar100",
    "mnist": "mnist",
    "caltech101": "vtab-caltech101",
    "sun397": "sun397",
    "fgvc_aircraft": "fgvc_aircraft",
    "country211": "country211",
    "cars": "cars",
    "birdsnap": "birdsnap",
    "dtd": "vtab-dtd",
    "eurosat": "vtab-eurosat",
    "fer2013": "fer2013",
    "flowers": "vtab-flowers",
    "food101": "food101",
    "gtsrb": "gtsrb",
    "pets": "vtab-pets",
    "renderedsst2": "renderedsst2",
    "resisc45": "vtab-resisc45",
    "stl10": "stl10",
    "voc2007": "voc2007",
    "imagenet1k": "imagenet1k",
}
TABLE_B_DATASETS = (
    "cifar10,cifar100,mnist,caltech101,sun397,fgvc_aircraft,country211,cars,birdsnap,dtd,"
    "eurosat,fer2013,flowers,food101,gtsrb,pets,renderedsst2,resisc45,stl10,voc2007"
)
BIRDSNAP_LIST = "test_images_valid.txt"
BIRDSNAP_SPECIES = "species.txt"
LOGIT_SCALE = 100.0


@dataclass
class LabelledImages:
    """What one variant evaluates: images, their labels, the class names, templates and source files."""

    source: ImageSource
    labels: list[int]
    classnames: list[str]
    templates: list[str]
    files: list[Path]
    details: dict


@register_task
class ZeroShotClassification(Task):
    """Zero-shot classification on CLIP_benchmark webdatasets: acc1, acc5, mean per-class recall (Table B)."""

    name = "zeroshot_classification"
    version = "1"
    table = "B"

    @dataclass
    class Options:
        datasets: str = field(
            default=TABLE_B_DATASETS,
            metadata={"help": f"comma-separated datasets: {', '.join(HUB_NAMES)}, or a folder name under --data-root"},
        )
        split: str = field(default="test", metadata={"help": "webdataset split folder"})
        preprocess: str = field(
            default="crop",
            metadata={"help": "image preprocessing (crop: CLIP_benchmark's classification transform)", "choices": ["crop", "squash"]},
        )

    def variants(self) -> list[str]:
        names = split_list(self.options.datasets)
        if not names:
            raise BenchError("--datasets is empty; name at least one dataset, e.g. --datasets cifar10")
        return names

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        folder = dataset_folder(ctx.config.data_root, variant, single=len(self.variants()) == 1, split=self.options.split)
        data = load_dataset(folder, self.options.split)
        classifier = build_classifier(ctx, data.classnames, data.templates, variant)
        images = ctx.encode_images(
            data.source, self.options.preprocess, max_workers=data.details.get("n_shards"), desc=f"images[{variant}]"
        )
        logits = LOGIT_SCALE * images @ classifier.T
        labels = torch.tensor(data.labels)
        statistic = classification_statistic(target_ranks(logits, labels), labels, len(data.classnames))
        return TaskResult(
            metrics=classification_metrics(logits, labels),
            intervals=ctx.intervals(len(data.labels), statistic),
            n_samples=len(data.labels),
            data_files={str(path): ctx.file_sha256(path) for path in data.files},
            details={"n_classes": len(data.classnames), "n_templates": len(data.templates), "data_dir": str(folder), **data.details},
        )

    @classmethod
    def prepare(cls, data_root: Path, download: bool) -> str:
        data_root = Path(data_root)
        if data_root.name in HUB_NAMES:
            wanted = {data_root.name: data_root}
        else:
            wanted = {name: data_root / name for name in HUB_NAMES}
        report = []
        for name, folder in wanted.items():
            if download and not _is_dataset(folder, "test"):
                try:  # one failed download (e.g. no hub copy of Birdsnap) must not stop the others
                    commit = download_from_hub(HUB_NAMES[name], folder)
                    report.append(f"fetched {folder} from clip-benchmark/wds_{HUB_NAMES[name]} @ {commit}")
                except BenchError as exc:
                    report.append(f"failed  {exc}")
            report.append(_check(folder))
        return "\n".join(report)


def _check(folder: Path) -> str:
    try:
        data = load_dataset(folder, "test")
    except BenchError as exc:
        return f"missing {folder}: {exc}"
    return f"ok      {folder}: {len(data.labels)} images, {len(data.classnames)} classes, {len(data.templates)} templates"


def dataset_folder(data_root: Path | None, variant: str, single: bool, split: str = "test") -> Path:
    """``DATA_ROOT/<variant>``, or DATA_ROOT itself when it is a dataset and only one was named."""
    if data_root is None:
        raise BenchError("zeroshot_classification needs --data-root DIR (one folder per dataset, or the dataset itself)")
    root = Path(data_root)
    nested = root / variant
    if nested.is_dir():
        return nested
    if single and _is_dataset(root, split):
        return root
    raise BenchError(
        f"{nested}: dataset folder not found; put the '{variant}' webdataset there "
        f"(`internvl-bench prepare zeroshot_classification --data-root {nested} --download`)"
    )


def _is_dataset(folder: Path, split: str) -> bool:
    return WebDatasetFolder.is_webdataset(folder, split) or (folder / BIRDSNAP_LIST).is_file()


def load_dataset(folder: Path, split: str) -> LabelledImages:
    """Read a webdataset folder, or the fork's Birdsnap folder layout when ``test_images_valid.txt`` is there."""
    if (folder / BIRDSNAP_LIST).is_file():
        return _load_birdsnap_folder(folder)
    wds = WebDatasetFolder(folder, split)
    if wds.dataset_type() != "classification":
        raise BenchError(
            f"{folder / 'dataset_type.txt'}: a '{wds.dataset_type()}' webdataset; zero-shot classification needs single-label .cls samples"
        )
    classnames, templates = wds.classnames(), wds.templates()
    _check_templates(templates, wds.templates_file)
    index = wds.index()
    if not index.samples:
        raise BenchError(f"{wds.split_dir}: the shards hold no samples; fetch the dataset again")
    index.check_labels(len(classnames), wds.classnames_file)
    details = {"n_shards": len(index.shards)}
    if wds.hub_revision():
        details["hub_revision"] = wds.hub_revision()
    return LabelledImages(
        index.image_source(), index.labels(), classnames, templates,
        [wds.classnames_file, wds.templates_file, wds.nshards_file], details,
    )


def _load_birdsnap_folder(folder: Path) -> LabelledImages:
    """The fork's ``BirdsnapV2``: the 1,845 downloadable test images, labels from the species folder."""
    list_file, species_file = folder / BIRDSNAP_LIST, folder / BIRDSNAP_SPECIES
    templates_file = folder / "zeroshot_classification_templates.txt"
    hint = "see the zeroshot_classification module docstring for the Birdsnap layout"
    rows = [line.split("\t") for line in read_lines(species_file, "Birdsnap species table", hint)[1:] if line.strip()]
    if not rows or any(len(row) < 2 for row in rows):
        raise BenchError(f"{species_file}: expected a header then tab-separated rows (id, common name, ..., folder)")
    classnames = [row[1] for row in rows]
    folder_to_label = {row[-1].strip().lower(): label for label, row in enumerate(rows)}
    paths, labels = [], []
    for number, line in enumerate(read_lines(list_file, "Birdsnap image list", hint)[1:], start=2):
        if not line.strip():
            continue
        species = line.split("/")[0].lower()
        if species not in folder_to_label:
            raise BenchError(f"{list_file}:{number}: species folder '{species}' is not in {species_file}")
        paths.append(folder / line.strip())
        labels.append(folder_to_label[species])
    templates = [t.strip() for t in read_lines(templates_file, "zero-shot template file", hint) if t.strip()]
    if not templates:
        raise BenchError(f"{templates_file}: zero-shot template file is empty; {hint}")
    _check_templates(templates, templates_file)
    return LabelledImages(ImageFileSource(paths), labels, classnames, templates, [list_file, species_file, templates_file], {})


def _check_templates(templates: list[str], path: Path) -> None:
    for template in templates:
        try:
            template.format(c="x")
        except (KeyError, IndexError, ValueError):
            raise BenchError(f"{path}: template {template!r} is not a format string with only the {{c}} field") from None


def prompts(classnames: list[str], templates: list[str]) -> list[str]:
    """All prompts, class-major: row ``c * len(templates) + t`` is template t filled with class c."""
    return [template.format(c=name) for name in classnames for template in templates]


def class_embeddings(prompt_embeddings: torch.Tensor, n_classes: int) -> torch.Tensor:
    """[C * T, D] prompt embeddings (class-major) -> [C, D]: normalise each, mean per class, re-normalise."""
    per_class = F.normalize(prompt_embeddings.float(), dim=-1).reshape(n_classes, -1, prompt_embeddings.shape[-1])
    return F.normalize(per_class.mean(dim=1), dim=-1)


def build_classifier(ctx: RunContext, classnames: list[str], templates: list[str], variant: str) -> torch.Tensor:
    """The zero-shot classifier [C, D], from one batched (and cached) encoding of every prompt."""
    embeddings = ctx.encode_texts(prompts(classnames, templates), desc=f"prompts[{variant}]")
    return class_embeddings(embeddings, len(classnames))
