"""Flickr30K(-CN) / COCO(-CN) retrieval: readers, pre_caption, CLI end to end, bad input."""
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
from tasks.retrieval import LAYOUTS, pre_caption, read_coco, read_flickr
from tests.fixtures.flickr import write_coco, write_flickr

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
    zsr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
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
    tokenizer = lambda texts: torch.tensor([int(t) for t in texts])  # noqa: E731
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
    flickr = pytest.importorskip("clip_benchmark.datasets.flickr")
    builder = pytest.importorskip("clip_benchmark.datasets.builder")
    zsr = pytest.importorskip("clip_benchmark.metrics.zeroshot_retrieval")
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
