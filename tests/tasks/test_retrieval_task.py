"""Flickr30K(-CN) / COCO(-CN) retrieval: the three data formats (the fork's files, Karpathy's json,
CLIP_benchmark webdatasets), pre_caption, CLI end to end, prepare, bad input, CLIP_benchmark parity."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from internvl_bench.cli import main
from internvl_bench.data import file_sha256
from internvl_bench.errors import BenchError
from internvl_bench.metrics.retrieval import retrieval_recalls
from tasks.retrieval import (
    LAYOUTS,
    Retrieval,
    find_dataset,
    load_webdataset,
    pre_caption,
    read_coco,
    read_flickr,
    read_karpathy,
)
from tests.fixtures.flickr import write_coco, write_flickr, write_karpathy
from tests.fixtures.intervals import assert_intervals
from tests.fixtures.upstream import require
from tests.fixtures.wds import (
    numbered_captions,
    write_retrieval_webdataset,
    write_webdataset,
)

EXPECTED_WDS = json.loads((Path(__file__).parent / "data" / "retrieval_wds" / "expected.json").read_text())


def record_of(tmp_path: Path, variant: str) -> dict:
    return json.loads((tmp_path / "runs" / f"openclip-tiny-clip-random-0__retrieval__{variant}.json").read_text())

# (raw caption, max_words, expected) -- worked out by hand from the fork's rules
PRE_CAPTION_CASES = [
    ("A Dog (number 3), running: on grass; version 1!", 50, "a dog number 3 , running on grass version 1"),
    ('  "Two"  men*#~ at the  BEACH.  ', 50, "two men at the beach"),
    ("one two three four five", 3, "one two three"),
    ("一只狗在草地上奔跑。", 50, "一只狗在草地上奔跑。"),
]


@pytest.mark.parametrize("raw, max_words, expected", PRE_CAPTION_CASES)
def test_pre_caption(raw: str, max_words: int, expected: str) -> None:
    assert pre_caption(raw, max_words) == expected


def test_flickr_reader_groups_captions_by_image_in_first_seen_order(tmp_path: Path) -> None:
    annotation = tmp_path / "ann.txt"
    annotation.write_text("image,caption\nb.jpg,x, with comma\na.jpg,y\nb.jpg,z\n\n", encoding="utf-8")
    data = read_flickr(annotation, tmp_path / "Images")
    assert data.paths == [tmp_path / "Images" / "b.jpg", tmp_path / "Images" / "a.jpg"]
    assert data.captions == ["x, with comma", "z", "y"]
    assert data.text_to_image == [0, 0, 1]


def test_coco_readers_sort_images_by_id_and_resolve_paths(tmp_path: Path) -> None:
    folder = write_coco(tmp_path, n_images=3)
    english = read_coco(folder / "coco_test_karpathy.json", folder / "val2014")
    assert [p.name for p in english.paths] == [f"COCO_val2014_{i:012d}.jpg" for i in range(3)]
    assert english.captions[:2] == ["A cat #0 sits. (0)", "A cat #0 sits. (1)"] and english.text_to_image == [0, 0, 1, 1, 2, 2]
    chinese = read_coco(folder / "coco-cn_test.json", folder / ".")
    assert all(p.is_file() for p in chinese.paths) and {p.parent.name for p in chinese.paths} == {"train2014", "val2014"}


def test_caption_to_image_mapping_gives_perfect_recall_for_a_perfect_model(tmp_path: Path) -> None:
    folder = write_flickr(tmp_path, n_images=5, captions_per_image=3)
    data = read_flickr(folder / LAYOUTS["flickr30k"].annotation, folder / "Images")
    # a perfect encoder: image i and every caption the file gives it share one direction
    owner_in_file = {caption: int(caption.split("number ")[1][0]) for caption in data.captions}
    images = torch.eye(16)[[int(p.stem) - 1000 for p in data.paths]]
    texts = F.one_hot(torch.tensor([owner_in_file[c] for c in data.captions]), 16).float()
    mapping = torch.tensor(data.text_to_image)
    assert retrieval_recalls(images, texts, mapping)["i2t_R@1"] == retrieval_recalls(images, texts, mapping)["t2i_R@1"] == 100.0
    shifted = (mapping + 1) % 5
    assert retrieval_recalls(images, texts, shifted)["t2i_R@1"] == 0.0


def test_cli_runs_all_four_datasets_and_records_annotation_hashes(tmp_path: Path, run_args: list[str]) -> None:
    write_flickr(tmp_path / "data", n_images=4)
    write_coco(tmp_path / "data", n_images=3)
    argv = ["run", "--task", "retrieval", "--datasets", "flickr30k,flickr30k_cn,coco,coco_cn", "--data-root", str(tmp_path / "data")]
    assert main([*argv, *run_args]) == 0
    expected = {"flickr30k": (4, 8), "flickr30k_cn": (4, 8), "coco": (3, 6), "coco_cn": (3, 3)}
    for variant, (n_images, n_captions) in expected.items():
        record = json.loads((tmp_path / "runs" / f"openclip-tiny-clip-random-0__retrieval__{variant}.json").read_text())
        assert record["variant"] == variant and record["n_samples"] == n_images
        assert record["details"]["n_captions"] == n_captions
        assert set(record["metrics"]) == {"i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mean_R"}
        assert record["options"]["pre_caption"] is True and record["options"]["preprocess"] == "squash"
        assert_intervals(record)
        layout = LAYOUTS[variant]
        annotation = str(tmp_path / "data" / layout.folder / layout.annotation)
        assert record["provenance"]["data_files"] == {annotation: file_sha256(annotation)}


def test_pre_caption_option_changes_the_texts_encoded(tmp_path: Path, run_args: list[str]) -> None:
    folder = write_flickr(tmp_path / "data", n_images=4)
    argv = ["run", "--task", "retrieval", "--datasets", "flickr30k", "--data-root", str(folder), *run_args]
    assert main([*argv, "--no-pre-caption"]) == 0
    record = json.loads((tmp_path / "runs" / "openclip-tiny-clip-random-0__retrieval__flickr30k.json").read_text())
    assert record["options"]["pre_caption"] is False
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 2  # images + raw captions
    assert main(argv) == 0
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 3  # + cleaned captions, images reused


def test_annotation_line_without_jpg_is_one_line_error(tmp_path: Path, run_args: list[str], capsys) -> None:
    folder = write_flickr(tmp_path / "data", n_images=2)
    annotation = folder / "flickr30k_test_karpathy.txt"
    annotation.write_text(annotation.read_text(encoding="utf-8") + "1000.png,a caption\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["run", "--task", "retrieval", "--datasets", "flickr30k", "--data-root", str(tmp_path / "data"), *run_args]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{annotation}:6" in err


def test_unknown_dataset_lists_the_known_ones(tmp_path: Path, run_args: list[str], capsys) -> None:
    assert main(["run", "--task", "retrieval", "--datasets", "flickr", "--data-root", str(tmp_path), *run_args]) != 0
    assert "flickr30k" in capsys.readouterr().err


def test_broken_coco_json_names_the_file(tmp_path: Path) -> None:
    folder = write_coco(tmp_path)
    (folder / "coco_test_karpathy.json").write_text('{"images": []}', encoding="utf-8")
    with pytest.raises(BenchError, match="coco_test_karpathy.json"):
        read_coco(folder / "coco_test_karpathy.json", folder / "val2014")


def test_recalls_equal_clip_benchmark_on_identical_embeddings() -> None:
    zsr = require("clip_benchmark.metrics.zeroshot_retrieval")
    generator = torch.Generator().manual_seed(0)
    n_images, per_image, dim = 300, 5, 16
    image_emb = F.normalize(torch.randn(n_images, dim, generator=generator), dim=-1)
    owners = torch.arange(n_images).repeat_interleave(per_image)
    text_emb = F.normalize(image_emb[owners] + 0.9 * torch.randn(len(owners), dim, generator=generator), dim=-1)

    class FakeModel:
        def encode_image(self, ids):
            return image_emb[ids]

        def encode_text(self, ids):
            return text_emb[ids]

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return n_images

        def __getitem__(self, i):
            return i, [str(t) for t in range(i * per_image, (i + 1) * per_image)]

    def collate(batch):
        return torch.tensor([b[0] for b in batch]), [b[1] for b in batch]

    loader = torch.utils.data.DataLoader(Pairs(), batch_size=32, collate_fn=collate)
    tokenizer = lambda texts: torch.tensor([int(t) for t in texts])
    theirs = zsr.evaluate(FakeModel(), loader, tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    ours = retrieval_recalls(image_emb, text_emb, owners)
    differences = {
        **{f"i2t_R@{k}": abs(ours[f"i2t_R@{k}"] - 100 * theirs[f"text_retrieval_recall@{k}"]) for k in (1, 5, 10)},
        **{f"t2i_R@{k}": abs(ours[f"t2i_R@{k}"] - 100 * theirs[f"image_retrieval_recall@{k}"]) for k in (1, 5, 10)},
    }
    print("ours:", ours, "max |ours - CLIP_benchmark| (percent):", max(differences.values()))
    assert max(differences.values()) < 1e-4


def test_end_to_end_equals_clip_benchmark_on_the_same_flickr_files(tmp_path: Path, run_args: list[str]) -> None:
    """Reader, ordering and recalls together, against CLIP_benchmark's Flickr dataset and evaluator."""
    flickr = require("clip_benchmark.datasets.flickr")
    builder = require("clip_benchmark.datasets.builder")
    zsr = require("clip_benchmark.metrics.zeroshot_retrieval")
    import open_clip

    import model_zoo

    folder = write_flickr(tmp_path / "data", n_images=12, captions_per_image=3)
    # upstream CLIP_benchmark does not clean captions, so compare without pre_caption
    argv = ["run", "--task", "retrieval", "--datasets", "flickr30k", "--no-pre-caption", "--data-root", str(folder), *run_args]
    assert main(argv) == 0
    ours = json.loads((tmp_path / "runs" / "openclip-tiny-clip-random-0__retrieval__flickr30k.json").read_text())["metrics"]

    model = model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0")
    dataset = flickr.Flickr(root=str(folder / "Images"), ann_file=str(folder / "flickr30k_test_karpathy.txt"), transform=model.image_transform("squash"))
    loader = torch.utils.data.DataLoader(dataset, batch_size=5, collate_fn=builder.image_captions_collate_fn)
    theirs = zsr.evaluate(model.network, loader, open_clip.get_tokenizer("tiny-clip"), "cpu", amp=False, recall_k_list=[1, 5, 10])
    differences = {
        **{f"i2t_R@{k}": abs(ours[f"i2t_R@{k}"] - 100 * theirs[f"text_retrieval_recall@{k}"]) for k in (1, 5, 10)},
        **{f"t2i_R@{k}": abs(ours[f"t2i_R@{k}"] - 100 * theirs[f"image_retrieval_recall@{k}"]) for k in (1, 5, 10)},
    }
    print("ours:", ours, "max |ours - CLIP_benchmark| (percent):", max(differences.values()))
    assert max(differences.values()) < 1e-4


# --- Karpathy's split json -------------------------------------------------------------------------

def test_karpathy_flickr_reads_test_images_in_file_order_with_raw_captions(tmp_path: Path) -> None:
    folder = write_karpathy(tmp_path, "flickr30k", n_test=3, captions_per_image=2)
    data = read_karpathy(folder / "dataset_flickr30k.json", folder / "Images")
    assert data.paths == [folder / "Images" / f"{5000 + i}.jpg" for i in (0, 2, 4)]  # train/val/restval skipped
    assert data.captions[:2] == ["A Bird (number 0), flying: high; version 0!", "A Bird (number 0), flying: high; version 1!"]
    assert data.text_to_image == [0, 0, 1, 1, 2, 2] and all(path.is_file() for path in data.paths)


def test_karpathy_coco_sorts_by_cocoid_and_joins_filepath(tmp_path: Path) -> None:
    folder = write_karpathy(tmp_path, "coco", n_test=3)
    data = read_karpathy(folder / "dataset_coco.json", folder, sort_by_id=True)
    assert [p.name for p in data.paths] == [f"COCO_val2014_{9000 - i:012d}.jpg" for i in (4, 2, 0)]
    assert all(path.parent == folder / "val2014" and path.is_file() for path in data.paths)
    assert data.captions[0].startswith("A Bird (number 4)")


@pytest.mark.parametrize("content, message", [
    ('[1, 2]', "no 'images' list"),
    ('{"images": [{"split": "train", "filename": "a.jpg", "sentences": []}]}', "no images with split 'test'"),
    ('{"images": [{"split": "test", "sentences": []}]}', r"images\[0\] lacks a 'filename'"),
    ('{"images": [{"split": "test", "filename": "a.jpg", "sentences": [{"tokens": []}]}]}', "without a 'raw'"),
    ('{"images": [', "not valid JSON"),
])
def test_malformed_karpathy_json_is_a_one_line_error_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    annotation = tmp_path / "dataset_flickr30k.json"
    annotation.write_text(content, encoding="utf-8")
    with pytest.raises(BenchError, match=message) as error:
        read_karpathy(annotation, tmp_path / "Images")
    assert str(annotation) in str(error.value) and "\n" not in str(error.value)


def test_karpathy_coco_needs_cocoids(tmp_path: Path) -> None:
    annotation = tmp_path / "dataset_coco.json"
    annotation.write_text('{"images": [{"split": "test", "filepath": "val2014", "filename": "a.jpg", "sentences": []}]}')
    with pytest.raises(BenchError, match="cocoid"):
        read_karpathy(annotation, tmp_path, sort_by_id=True)


def test_cli_reads_karpathy_files_and_records_their_hashes(tmp_path: Path, run_args: list[str]) -> None:
    write_karpathy(tmp_path / "data", "flickr30k", n_test=4)
    write_karpathy(tmp_path / "data", "coco", n_test=3)
    argv = ["run", "--task", "retrieval", "--datasets", "flickr30k,coco", "--data-root", str(tmp_path / "data")]
    assert main([*argv, *run_args]) == 0
    for variant, name, n_images in (("flickr30k", "dataset_flickr30k.json", 4), ("coco", "dataset_coco.json", 3)):
        record = record_of(tmp_path, variant)
        annotation = tmp_path / "data" / LAYOUTS[variant].folder / name
        assert record["details"]["format"] == "karpathy_json" and record["n_samples"] == n_images
        assert record["details"]["n_captions"] == 2 * n_images
        assert record["provenance"]["data_files"] == {str(annotation): file_sha256(annotation)}
        assert_intervals(record)


# --- CLIP_benchmark retrieval webdatasets ----------------------------------------------------------

def test_webdataset_reader_takes_captions_per_line_in_shard_order(tmp_path: Path) -> None:
    captions = [["first", "second"], ["only one"], ["x", "y", "z"], ["last"]]
    root = write_retrieval_webdataset(tmp_path / "flickr30k", captions, n_shards=3)
    data = load_webdataset(root)
    assert data.captions == ["first", "second", "only one", "x", "y", "z", "last"]
    assert data.text_to_image == [0, 0, 1, 2, 2, 2, 3] and len(data.source) == 4
    assert data.source.load(2).size == (26, 24)  # encode_image(2, 2): 24 + 2 % 5 wide
    assert data.files == [root / "dataset_type.txt", root / "test" / "nshards.txt", *(root / "test" / f"{i}.tar" for i in range(3))]
    assert data.details == {"n_shards": 3} and data.image_files == []


def test_cli_runs_webdatasets_records_shard_hashes_and_intervals(tmp_path: Path, run_args: list[str]) -> None:
    write_retrieval_webdataset(tmp_path / "data" / "flickr30k", numbered_captions(6, 2), n_shards=2)
    write_retrieval_webdataset(tmp_path / "data" / "coco_cn", numbered_captions(5, 1), n_shards=1, image_format="jpg")
    argv = ["run", "--task", "retrieval", "--datasets", "flickr30k,coco_cn", "--data-root", str(tmp_path / "data")]
    assert main([*argv, *run_args]) == 0
    for variant, n_images, n_captions, n_shards in (("flickr30k", 6, 12, 2), ("coco_cn", 5, 5, 1)):
        record = record_of(tmp_path, variant)
        folder = tmp_path / "data" / variant
        assert record["details"]["format"] == "webdataset" and record["details"]["n_shards"] == n_shards
        assert (record["n_samples"], record["details"]["n_captions"]) == (n_images, n_captions)
        files = [folder / "dataset_type.txt", folder / "test" / "nshards.txt", *(folder / "test" / f"{i}.tar" for i in range(n_shards))]
        assert record["provenance"]["data_files"] == {str(f): file_sha256(f) for f in files}
        assert_intervals(record)


def test_data_root_that_is_a_webdataset_is_read_when_one_dataset_is_named(tmp_path: Path, run_args: list[str]) -> None:
    root = write_retrieval_webdataset(tmp_path / "mine", numbered_captions(4, 2), n_shards=1)
    assert main(["run", "--task", "retrieval", "--datasets", "coco", "--data-root", str(root), *run_args]) == 0
    assert record_of(tmp_path, "coco")["details"]["data_dir"] == str(root)
    assert find_dataset(root, "coco", single=False) is None  # with several datasets a bare webdataset is ambiguous


def test_the_chinese_set_never_reads_the_english_webdataset(tmp_path: Path) -> None:
    write_retrieval_webdataset(tmp_path / "flickr30k", numbered_captions(3, 1), n_shards=1)
    assert find_dataset(tmp_path, "flickr30k", single=False).format == "webdataset"
    assert find_dataset(tmp_path, "flickr30k_cn", single=False) is None


def test_formats_are_searched_fork_file_then_karpathy_then_webdataset(tmp_path: Path) -> None:
    write_retrieval_webdataset(tmp_path / "flickr30k", numbered_captions(3, 1), n_shards=1)
    write_karpathy(tmp_path, "flickr30k")
    assert find_dataset(tmp_path, "flickr30k", single=True).format == "karpathy_json"
    write_flickr(tmp_path)
    located = find_dataset(tmp_path, "flickr30k", single=True)
    assert (located.format, located.path) == ("fork_files", tmp_path / "flickr30k" / "flickr30k_test_karpathy.txt")


def test_no_data_is_one_line_naming_every_expected_place(tmp_path: Path, run_args: list[str], capsys) -> None:
    capsys.readouterr()
    assert main(["run", "--task", "retrieval", "--datasets", "coco", "--data-root", str(tmp_path), *run_args]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    for expected in ("coco_test_karpathy.json", "dataset_coco.json", str(tmp_path / "coco" / "test" / "nshards.txt"),
                     "prepare retrieval"):
        assert expected in err


def test_a_classification_webdataset_is_refused_naming_dataset_type(tmp_path: Path) -> None:
    root = write_webdataset(tmp_path / "flickr30k", [0, 1, 2], n_shards=1)
    with pytest.raises(BenchError, match="dataset_type.txt: a 'classification' webdataset"):
        load_webdataset(root)


def test_a_sample_without_captions_member_names_its_shard(tmp_path: Path) -> None:
    root = write_webdataset(tmp_path / "flickr30k", [0, 1], n_shards=1)  # .cls, no .txt
    (root / "dataset_type.txt").write_text("retrieval\n")
    with pytest.raises(BenchError, match=r"0\.tar: sample 's0000000' has no \.txt captions member"):
        load_webdataset(root)


def test_undecodable_captions_name_the_member(tmp_path: Path) -> None:
    import io
    import tarfile

    root = write_retrieval_webdataset(tmp_path / "flickr30k", [["ok"]], n_shards=1)
    with tarfile.open(root / "test" / "0.tar", "a") as tar:
        info = tarfile.TarInfo("s0000009.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"\xff\xfe"))
        tar.addfile(tarfile.TarInfo("s0000009.png"), io.BytesIO(b""))  # the scan reads captions, not images
    with pytest.raises(BenchError, match="s0000009.txt' is not UTF-8"):
        load_webdataset(root)


def test_webdataset_equals_clip_benchmark_stored_numbers(tmp_path: Path, run_args: list[str]) -> None:
    """Reader, order, caption splitting and recalls against CLIP_benchmark's own run on the same shards
    (``data/retrieval_wds``: produced once by ``make_expected.py``; CLIP_benchmark is not needed here)."""
    fixture = EXPECTED_WDS["fixture"]
    write_retrieval_webdataset(tmp_path / "data" / "flickr30k", numbered_captions(fixture["n_images"], fixture["per_image"]),
                               n_shards=fixture["n_shards"], image_format=fixture["image_format"])
    argv = ["run", "--task", "retrieval", "--datasets", "flickr30k", "--no-pre-caption", "--preprocess",
            EXPECTED_WDS["preprocess"], "--data-root", str(tmp_path / "data"), *run_args]
    assert main(argv) == 0
    ours = record_of(tmp_path, "flickr30k")["metrics"]
    assert {key: pytest.approx(value, abs=1e-4) for key, value in EXPECTED_WDS["metrics"].items()} == {
        key: ours[key] for key in EXPECTED_WDS["metrics"]}


@pytest.mark.filterwarnings("ignore:WebDataset\\(shardshuffle=...\\) is None")  # CLIP_benchmark's call: no shuffle
def test_webdataset_equals_clip_benchmark_live(tmp_path: Path, run_args: list[str]) -> None:
    """The same comparison, running CLIP_benchmark's webdataset reader and evaluator."""
    require("webdataset")
    builder = require("clip_benchmark.datasets.builder")
    zsr = require("clip_benchmark.metrics.zeroshot_retrieval")
    import open_clip

    import model_zoo

    captions = [[f"caption {i}.{j} of a scene" for j in range(1 + i % 3)] for i in range(15)]
    root = write_retrieval_webdataset(tmp_path / "data" / "flickr30k", captions, n_shards=4, image_format="jpg")
    argv = ["run", "--task", "retrieval", "--datasets", "flickr30k", "--no-pre-caption", "--data-root", str(tmp_path / "data")]
    assert main([*argv, *run_args]) == 0
    ours = record_of(tmp_path, "flickr30k")["metrics"]
    model = model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0")
    dataset = builder.build_dataset("wds/flickr30k", root=str(root), transform=model.image_transform("squash"),
                                    split="test", task="zeroshot_retrieval")
    loader = torch.utils.data.DataLoader(dataset.batched(4, collation_fn=builder.image_captions_collate_fn),
                                         batch_size=None, num_workers=0)
    theirs = zsr.evaluate(model.network, loader, open_clip.get_tokenizer("tiny-clip"), "cpu", amp=False, recall_k_list=[1, 5, 10])
    differences = {
        **{f"i2t_R@{k}": abs(ours[f"i2t_R@{k}"] - 100 * theirs[f"text_retrieval_recall@{k}"]) for k in (1, 5, 10)},
        **{f"t2i_R@{k}": abs(ours[f"t2i_R@{k}"] - 100 * theirs[f"image_retrieval_recall@{k}"]) for k in (1, 5, 10)},
    }
    print("ours:", ours, "max |ours - CLIP_benchmark| (percent):", max(differences.values()))
    assert max(differences.values()) < 1e-4


# --- prepare and the run's device ------------------------------------------------------------------

def test_prepare_without_download_reports_each_dataset(tmp_path: Path) -> None:
    write_flickr(tmp_path, n_images=3)
    write_retrieval_webdataset(tmp_path / "coco", numbered_captions(2, 2), n_shards=1)
    lines = Retrieval.prepare(tmp_path, download=False).splitlines()
    assert lines[0] == f"ok      flickr30k: fork_files {tmp_path / 'flickr30k'} (3 images, 6 captions)"
    assert lines[1].startswith("ok      flickr30k_cn: fork_files")
    assert lines[2] == f"ok      coco: webdataset {tmp_path / 'coco'} (2 images, 4 captions)"
    assert lines[3].startswith("missing coco_cn: expected") and "fork ships this file" in lines[3]
    (tmp_path / "flickr30k" / "Images" / "1001.jpg").unlink()
    assert Retrieval.prepare(tmp_path, download=False).splitlines()[0].startswith("missing flickr30k: 1 of 3 images")


def fake_hub(monkeypatch, fail: bool = False) -> list[dict]:
    """``huggingface_hub`` without the network: each commit asked for is the number of earlier
    downloads, and a download writes a small retrieval webdataset (or the hub is unreachable)."""
    import huggingface_hub

    calls: list[dict] = []

    class FakeApi:
        def dataset_info(self, repo, revision):
            if fail:
                raise ConnectionError("no route to host")
            return type("Info", (), {"sha": f"{len(calls):040d}"})()

    def fake_snapshot(**kwargs):
        calls.append(kwargs)
        write_retrieval_webdataset(Path(kwargs["local_dir"]), numbered_captions(3, 2), n_shards=1)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    return calls


def test_prepare_download_fetches_the_hub_webdatasets_pinned_to_a_commit(tmp_path: Path, monkeypatch, run_args,
                                                                          capsys) -> None:
    calls = fake_hub(monkeypatch)
    write_flickr(tmp_path, n_images=2)  # flickr30k is there already: only COCO is fetched
    assert main(["prepare", "retrieval", "--data-root", str(tmp_path), "--download"]) == 0
    report = capsys.readouterr().out
    assert [call["repo_id"] for call in calls] == ["clip-benchmark/wds_mscoco_captions"]
    assert calls[0]["revision"] == "0" * 40 and calls[0]["repo_type"] == "dataset"
    assert calls[0]["local_dir"] == str(tmp_path / "coco")
    assert (tmp_path / "coco" / "hub_revision.txt").read_text() == "0" * 40 + "\n"
    assert f"fetched {tmp_path / 'coco'} from clip-benchmark/wds_mscoco_captions @ {'0' * 40}" in report
    assert f"ok      coco: webdataset {tmp_path / 'coco'} (3 images, 6 captions, hub commit {'0' * 40})" in report
    assert "missing coco_cn" in report
    assert main(["run", "--task", "retrieval", "--datasets", "coco", "--data-root", str(tmp_path), *run_args]) == 0
    assert record_of(tmp_path, "coco")["details"]["hub_revision"] == "0" * 40


def test_prepare_download_failure_is_reported_per_dataset_and_fails(tmp_path: Path, monkeypatch, capsys) -> None:
    calls = fake_hub(monkeypatch, fail=True)
    assert main(["prepare", "retrieval", "--data-root", str(tmp_path), "--download"]) != 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert calls == [] and not (tmp_path / "flickr30k" / "hub_revision.txt").exists()
    assert lines[0].startswith("failed  clip-benchmark/wds_flickr30k@main: download failed (ConnectionError")
    assert lines[1].startswith("missing flickr30k: expected")
    assert "2 hub download(s) failed" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_scores_are_computed_on_the_runs_device(tmp_path: Path, run_args: list[str], monkeypatch) -> None:
    import tasks.retrieval as task_module

    seen = []
    original = task_module.retrieval_ranks

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device"))
        return original(*args, **kwargs)

    monkeypatch.setattr(task_module, "retrieval_ranks", spy)
    folder = write_flickr(tmp_path / "data", n_images=3)
    assert main(["run", "--task", "retrieval", "--datasets", "flickr30k", "--data-root", str(folder), *run_args]) == 0
    assert [torch.device(d).type for d in seen] == ["cpu"]  # run_args pass --device cpu
