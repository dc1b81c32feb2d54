"""Zero-shot classification: metrics, classifier, webdataset reader, CLI end to end, bad input."""
from __future__ import annotations

import io
import json
import math
import pickle
import tarfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import model_zoo
from internvl_bench.cli import main
from internvl_bench.data import file_sha256
from internvl_bench.errors import BenchError
from internvl_bench.metrics.classification import classification_metrics
from internvl_bench.webdataset import WebDatasetFolder
from tasks.zeroshot_classification import build_classifier, class_embeddings, load_dataset, prompts
from tests.fixtures.intervals import assert_intervals
from tests.fixtures.wds import CLASSNAMES, TEMPLATES, balanced_labels, class_colour, write_webdataset

# -- metrics: hand-computed cases (logits, targets, expected percent values) ------------------------
METRIC_CASES = [
    pytest.param(
        # target 0 ranks 0; target 5 ranks 5 (outside top 5); target 1 ranks 4; target 1 tied with
        # class 0 ranks 1 (lower index first) and argmax predicts 0.
        [[0.9, 0.1, 0, 0, 0, 0], [0.5, 0.4, 0.3, 0.2, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.3, 0.3, 0.1, 0, 0, 0]],
        [0, 5, 1, 1],
        # per-class recall over present classes 0, 1, 5: 1/1, 0/2, 0/1 -> mean 1/3
        {"acc1": 25.0, "acc5": 75.0, "mean_per_class_recall": 100 / 3},
        id="ties-and-top5-boundary",
    ),
    pytest.param(
        [[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [1.0, 2.0, 0.0], [0.0, 1.0, 0.5]],
        [0, 2, 1, 0, 1],
        # class 0: 1 of 2 right, class 1: 2 of 2, class 2: 1 of 1 -> acc1 4/5; balanced (0.5+1+1)/3
        {"acc1": 80.0, "acc5": math.nan, "mean_per_class_recall": 250 / 3},
        id="three-classes-acc5-nan",
    ),
]


@pytest.mark.parametrize("logits, targets, expected", METRIC_CASES)
def test_classification_metrics_match_hand_computation(logits, targets, expected) -> None:
    got = classification_metrics(torch.tensor(logits), torch.tensor(targets))
    assert set(got) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, abs=1e-9), key


def test_classification_metrics_reject_out_of_range_targets() -> None:
    with pytest.raises(ValueError):
        classification_metrics(torch.zeros(2, 3), torch.tensor([0, 3]))


# -- classifier ----------------------------------------------------------------------------------
def test_prompts_are_class_major() -> None:
    assert prompts(["cat", "dog"], ["a {c}.", "the {c}!"]) == ["a cat.", "the cat!", "a dog.", "the dog!"]


def test_class_embeddings_match_hand_computation() -> None:
    # class 0: (3,4)->(.6,.8), (0,2)->(0,1): mean (.3,.9)/sqrt(.9); class 1: (1,0), (0,-1): mean (.5,-.5)/sqrt(.5)
    prompt_embeddings = torch.tensor([[3.0, 4.0], [0.0, 2.0], [2.0, 0.0], [0.0, -5.0]])
    expected = torch.tensor([[0.3, 0.9], [0.5, -0.5]]) / torch.tensor([[0.9**0.5], [0.5**0.5]])
    assert torch.allclose(class_embeddings(prompt_embeddings, 2), expected, atol=1e-6)


class RecordingContext:
    """Stands in for RunContext: records text batches and returns fixed embeddings."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode_texts(self, texts, *, normalize=True, desc=""):
        self.calls.append(list(texts))
        generator = torch.Generator().manual_seed(len(texts))
        return F.normalize(torch.randn(len(texts), 8, generator=generator), dim=-1)


def test_classifier_encodes_all_prompts_in_one_call() -> None:
    ctx = RecordingContext()
    classifier = build_classifier(ctx, list(CLASSNAMES), list(TEMPLATES), "x")
    assert ctx.calls == [prompts(list(CLASSNAMES), list(TEMPLATES))]
    assert classifier.shape == (len(CLASSNAMES), 8)
    assert torch.allclose(classifier.norm(dim=-1), torch.ones(len(CLASSNAMES)))


# -- webdataset reader ----------------------------------------------------------------------------
@pytest.mark.parametrize("image_format", ["webp", "png", "jpg"])
def test_reader_keeps_order_across_shards_and_decodes_in_load(tmp_path: Path, image_format: str) -> None:
    labels = [3, 1, 4, 1, 5, 0, 2, 5, 3]
    root = write_webdataset(tmp_path / "ds", labels, n_shards=3, image_format=image_format)
    data = load_dataset(root, "test")
    assert data.labels == labels
    assert data.classnames == list(CLASSNAMES) and data.templates == list(TEMPLATES)
    assert len(data.source) == len(labels)
    for index in (0, 4, 8):
        image = data.source.load(index)
        assert image.mode == "RGB"
        centre = image.getpixel((20, 12))
        assert max(abs(a - b) for a, b in zip(centre, class_colour(labels[index]))) <= 8


def test_image_source_pickles_without_open_descriptors(tmp_path: Path) -> None:
    root = write_webdataset(tmp_path / "ds", balanced_labels(6, 2), n_shards=2)
    source = load_dataset(root, "test").source
    source.load(0)
    clone = pickle.loads(pickle.dumps(source))
    assert clone._descriptors == {}
    assert clone.load(11).size == source.load(11).size


def test_fingerprint_changes_when_a_shard_changes(tmp_path: Path) -> None:
    root = write_webdataset(tmp_path / "ds", balanced_labels(6, 2), n_shards=2)
    before = load_dataset(root, "test").source.fingerprint()
    write_webdataset(root, balanced_labels(6, 3), n_shards=2)
    assert load_dataset(root, "test").source.fingerprint() != before


# -- end to end through the CLI -------------------------------------------------------------------
def _decode_shards(root: Path) -> tuple[list[Image.Image], list[int]]:
    """Independent reader: every image and label, via tarfile, in shard then member order."""
    images, labels = [], []
    count = int((root / "test" / "nshards.txt").read_text())
    for shard in range(count):
        with tarfile.open(root / "test" / f"{shard}.tar") as tar:
            members = {m.name: m for m in tar.getmembers()}
            for name in sorted(n for n in members if n.endswith(".cls")):
                key = name[: -len(".cls")]
                labels.append(int(tar.extractfile(members[name]).read()))
                image_name = next(f"{key}.{ext}" for ext in ("webp", "png", "jpg") if f"{key}.{ext}" in members)
                images.append(Image.open(io.BytesIO(tar.extractfile(members[image_name]).read())).convert("RGB"))
    return images, labels


def test_cli_run_matches_an_independent_computation(tmp_path: Path, run_args: list[str]) -> None:
    write_webdataset(tmp_path / "data" / "cifar10", balanced_labels(6, 3), n_shards=2)
    write_webdataset(tmp_path / "data" / "mnist", balanced_labels(3, 2), classnames=("zero", "one", "two"), n_shards=1)
    argv = ["run", "--task", "zeroshot_classification", "--datasets", "cifar10,mnist", "--data-root", str(tmp_path / "data")]
    assert main([*argv, *run_args]) == 0
    runs = tmp_path / "runs"
    record = json.loads((runs / "openclip-tiny-clip-random-0__zeroshot_classification__cifar10.json").read_text())
    assert record["variant"] == "cifar10" and record["n_samples"] == 18
    assert record["options"]["preprocess"] == "crop" and record["options"]["datasets"] == "cifar10,mnist"
    assert record["details"]["n_classes"] == 6 and record["details"]["n_templates"] == len(TEMPLATES)
    classnames_file = str(tmp_path / "data" / "cifar10" / "classnames.txt")
    assert record["provenance"]["data_files"][classnames_file] == file_sha256(classnames_file)
    mnist = json.loads((runs / "openclip-tiny-clip-random-0__zeroshot_classification__mnist.json").read_text())
    assert mnist["metrics"]["acc5"] is None  # NaN below 5 classes, stored as null
    assert_intervals(record)
    assert_intervals(mnist)
    assert mnist["intervals"]["acc5"] == [None, None]

    # independent path: the public model API, class-by-class prompts, brute-force accuracy
    model = model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0")
    images, labels = _decode_shards(tmp_path / "data" / "cifar10")
    image_emb = model.encode_image(model.preprocess(images, mode="crop"))
    weights = []
    for name in CLASSNAMES:
        emb = model.encode_text([t.format(c=name) for t in TEMPLATES])
        weights.append(F.normalize(emb.mean(0), dim=0))
    logits = image_emb @ torch.stack(weights).T
    for k, key in ((1, "acc1"), (5, "acc5")):
        hits = sum(label in sorted(range(6), key=lambda c: (-logits[i, c].item(), c))[:k] for i, label in enumerate(labels))
        assert record["metrics"][key] == pytest.approx(100 * hits / len(labels), abs=1e-9)


def test_data_root_may_be_the_dataset_itself(tmp_path: Path, run_args: list[str]) -> None:
    root = write_webdataset(tmp_path / "somewhere", balanced_labels(6, 1), n_shards=1)
    assert main(["run", "--task", "zeroshot_classification", "--datasets", "my_fruit", "--data-root", str(root), *run_args]) == 0
    assert (tmp_path / "runs" / "openclip-tiny-clip-random-0__zeroshot_classification__my_fruit.json").is_file()


# -- bad input: one line naming the file, non-zero exit ---------------------------------------------
def _missing_shard(root: Path) -> Path:
    (root / "test" / "1.tar").unlink()
    return root / "test" / "1.tar"


def _label_outside(root: Path) -> Path:
    write_webdataset(root, [0, 1, 9, 2], n_shards=2)
    return root / "test" / "1.tar"


def _empty_templates(root: Path) -> Path:
    (root / "zeroshot_classification_templates.txt").write_text("\n  \n", encoding="utf-8")
    return root / "zeroshot_classification_templates.txt"


@pytest.mark.parametrize("damage", [_missing_shard, _label_outside, _empty_templates])
def test_bad_input_is_one_line_naming_the_file(damage, tmp_path: Path, run_args: list[str], capsys) -> None:
    root = write_webdataset(tmp_path / "data" / "cifar10", balanced_labels(6, 1), n_shards=2)
    culprit = damage(root)
    capsys.readouterr()
    argv = ["run", "--task", "zeroshot_classification", "--datasets", "cifar10", "--data-root", str(tmp_path / "data")]
    assert main([*argv, *run_args]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(culprit) in err


def test_nshards_must_be_an_integer(tmp_path: Path) -> None:
    root = write_webdataset(tmp_path / "ds", balanced_labels(6, 1), n_shards=1)
    (root / "test" / "nshards.txt").write_text("two", encoding="utf-8")
    with pytest.raises(BenchError, match="nshards.txt"):
        WebDatasetFolder(root).shard_paths()


def test_retrieval_webdataset_is_refused(tmp_path: Path) -> None:
    root = write_webdataset(tmp_path / "ds", balanced_labels(6, 1), n_shards=1)
    (root / "dataset_type.txt").write_text("retrieval\n", encoding="utf-8")
    with pytest.raises(BenchError, match="dataset_type.txt"):
        load_dataset(root, "test")


# -- differential check against CLIP_benchmark (only where it is installed) -------------------------
def test_metrics_equal_clip_benchmark_on_identical_embeddings() -> None:
    zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
    from tasks.zeroshot_classification import LOGIT_SCALE

    n_classes, n_templates, dim, n_images = 37, 7, 32, 600
    generator = torch.Generator().manual_seed(0)
    prompt_emb = torch.randn(n_classes * n_templates, dim, generator=generator)
    labels = torch.randint(0, n_classes, (n_images,), generator=generator)
    # images near their class direction plus noise, so accuracies are neither 0 nor 100
    image_emb = F.normalize(prompt_emb.reshape(n_classes, n_templates, dim).mean(1)[labels] + 1.2 * torch.randn(n_images, dim, generator=generator), dim=-1)
    classnames = [f"class{i}" for i in range(n_classes)]
    templates = [f"t{j} {{c}}" for j in range(n_templates)]
    lookup = {text: row for text, row in zip(prompts(classnames, templates), prompt_emb)}

    class FakeModel:
        def encode_text(self, ids):
            return prompt_emb[ids]

        def encode_image(self, ids):
            return image_emb[ids]

    texts = prompts(classnames, templates)

    def tokenizer(batch):
        return torch.tensor([texts.index(t) for t in batch])

    class Images(torch.utils.data.Dataset):
        classes = classnames

        def __len__(self):
            return n_images

        def __getitem__(self, i):
            return i, int(labels[i])

    loader = torch.utils.data.DataLoader(Images(), batch_size=64)
    theirs = zsc.evaluate(FakeModel(), loader, tokenizer, classnames, templates, "cpu", amp=False)
    ours_classifier = class_embeddings(torch.stack([lookup[t] for t in texts]), n_classes)
    ours = classification_metrics(LOGIT_SCALE * image_emb @ ours_classifier.T, labels)
    differences = {key: abs(ours[key] - 100 * theirs[key]) for key in ours}
    print("ours:", ours, "max |ours - CLIP_benchmark| (percent):", max(differences.values()))
    assert max(differences.values()) < 1e-4


# -- Birdsnap folder layout and prepare ------------------------------------------------------------
def test_birdsnap_folder_layout_reads_the_valid_list(tmp_path: Path) -> None:
    root = tmp_path / "birdsnap"
    species = ["id\tcommon\tscientific\tdir", "1\tAcadian Flycatcher\tEmpidonax virescens\tacadian_flycatcher",
               "2\tCoopers Hawk\tAccipiter cooperii\tcoopers_hawk"]
    (root).mkdir()
    (root / "species.txt").write_text("\n".join(species) + "\n", encoding="utf-8")
    listed = ["Coopers_Hawk/0561.jpg", "Acadian_Flycatcher/0002.jpg", "Coopers_Hawk/0629.jpg"]
    (root / "test_images_valid.txt").write_text("path\n" + "\n".join(listed) + "\n", encoding="utf-8")
    (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c}, a type of bird.\n", encoding="utf-8")
    for i, name in enumerate(listed):
        (root / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), class_colour(i)).save(root / name)
    (root / "Coopers_Hawk" / "9999.jpg").write_bytes(b"not listed, so never read")
    data = load_dataset(root, "test")
    assert data.classnames == ["Acadian Flycatcher", "Coopers Hawk"]
    assert data.labels == [1, 0, 1] and len(data.source) == 3
    pixel = data.source.load(2).getpixel((4, 4))
    assert max(abs(a - b) for a, b in zip(pixel, class_colour(2))) <= 8  # JPEG is lossy


def test_prepare_without_download_reports_what_is_there(tmp_path: Path) -> None:
    from tasks.zeroshot_classification import ZeroShotClassification

    write_webdataset(tmp_path / "cifar10", balanced_labels(6, 2), n_shards=2)
    report = ZeroShotClassification.prepare(tmp_path, download=False)
    lines = report.splitlines()
    assert any(line.startswith("ok") and "cifar10: 12 images, 6 classes, 3 templates" in line for line in lines)
    assert any(line.startswith("missing") and str(tmp_path / "cars") in line for line in lines)
    assert ZeroShotClassification.prepare(tmp_path / "cifar10", download=False).startswith("ok")


def test_hub_download_is_pinned_to_the_resolved_commit(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub

    from internvl_bench.webdataset import download_from_hub

    calls = {}

    class FakeApi:
        def dataset_info(self, repo, revision):
            calls["info"] = (repo, revision)
            return type("Info", (), {"sha": "c0ffee" * 6 + "abcd"})()

    def fake_snapshot(**kwargs):
        calls["snapshot"] = kwargs
        write_webdataset(Path(kwargs["local_dir"]), balanced_labels(6, 1), n_shards=1)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    commit = download_from_hub("vtab-cifar10", tmp_path / "cifar10")
    assert calls["info"] == ("clip-benchmark/wds_vtab-cifar10", "main")
    assert calls["snapshot"]["revision"] == commit and calls["snapshot"]["repo_type"] == "dataset"
    assert load_dataset(tmp_path / "cifar10", "test").details["hub_revision"] == commit


def test_end_to_end_equals_clip_benchmark_on_the_same_webdataset(tmp_path: Path, run_args: list[str]) -> None:
    """Reader, classifier and metrics together: CLIP_benchmark's own pipeline on the same shards."""
    pytest.importorskip("webdataset")
    builder = pytest.importorskip("clip_benchmark.datasets.builder")
    zsc = pytest.importorskip("clip_benchmark.metrics.zeroshot_classification")
    import open_clip

    labels = [3, 1, 4, 1, 5, 0, 2, 5, 3, 0, 2, 4, 1, 1, 0]
    write_webdataset(tmp_path / "data" / "fruit", labels, n_shards=3, image_format="png")
    assert main(["run", "--task", "zeroshot_classification", "--datasets", "fruit", "--data-root", str(tmp_path / "data"), *run_args]) == 0
    ours = json.loads((tmp_path / "runs" / "openclip-tiny-clip-random-0__zeroshot_classification__fruit.json").read_text())["metrics"]

    model = model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0")
    dataset = builder.build_dataset("wds/fruit", root=str(tmp_path / "data" / "fruit"), transform=model.image_transform("crop"), split="test")
    loader = torch.utils.data.DataLoader(dataset.batched(4), batch_size=None, num_workers=0)
    theirs = zsc.evaluate(model.network, loader, open_clip.get_tokenizer("tiny-clip"), dataset.classes, dataset.templates, "cpu", amp=False)
    differences = {key: abs(ours[key] - 100 * theirs[key]) for key in ours}
    print("ours:", ours, "max |ours - CLIP_benchmark| (percent):", max(differences.values()))
    assert max(differences.values()) < 1e-4


def test_prepare_reports_a_failed_download_and_goes_on(tmp_path: Path, monkeypatch) -> None:
    import tasks.zeroshot_classification as module

    def fake_download(hub_name: str, folder: Path) -> str:
        if hub_name == "birdsnap":
            raise BenchError(f"clip-benchmark/wds_{hub_name}@main: download failed (RepositoryNotFoundError)")
        write_webdataset(folder, balanced_labels(6, 1), n_shards=1)
        return "f" * 40

    monkeypatch.setattr(module, "download_from_hub", fake_download)
    lines = module.ZeroShotClassification.prepare(tmp_path, download=True).splitlines()
    assert any(line.startswith("failed") and "wds_birdsnap" in line for line in lines)
    assert sum(line.startswith("ok") for line in lines) == len(module.HUB_NAMES) - 1
