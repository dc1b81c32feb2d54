"""MSR-VTT: frame sampling, decoders, frame averaging, dual softmax, bad input, CLI (Table C)."""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from internvl_bench.errors import BenchError
from internvl_bench.metrics.retrieval import recalls_from_ranks, retrieval_recalls
from internvl_bench.video import (
    DecordBackend,
    PyAVBackend,
    VideoFrameSource,
    frame_counts,
    is_regular,
    resolve_backend,
    sample_indices,
)
from tasks.msrvtt import MSRVTT, dual_softmax, read_annotations, video_text_ranks
from tests.fixtures.intervals import assert_intervals
from tests.fixtures.video import frame_code, write_video

BACKENDS = [DecordBackend(), PyAVBackend()]


# -- frame sampling ---------------------------------------------------------------------------
def official_rule(n: int, k: int) -> np.ndarray:
    """The official script's lines, restated with numpy as it writes them."""
    interval = math.ceil(n / k)
    return np.arange(0, n, interval) + interval // 2


def test_known_indices() -> None:
    # 300 frames, 8 samples: interval 38, centres 19 + 38 j
    assert sample_indices(300, 8) == [19, 57, 95, 133, 171, 209, 247, 285]
    assert sample_indices(301, 1) == [150]
    assert sample_indices(3, 8) == [0, 0, 0, 1, 1, 2, 2, 2]  # short video: (2j + 1) * 3 // 16


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8, 16])
def test_sampling_is_the_official_rule_where_it_holds(k: int) -> None:
    for n in range(1, 600):
        indices = sample_indices(n, k)
        expected = official_rule(n, k)
        assert len(indices) == k and all(0 <= i < n for i in indices)
        assert indices == sorted(indices)
        if len(expected) == k and expected[-1] < n:
            assert is_regular(n, k) and indices == expected.tolist(), (n, k)
        else:
            assert not is_regular(n, k)
            with pytest.raises(ValueError):
                sample_indices(n, k, policy="error")
            if n >= k:
                assert len(set(indices)) == k  # distinct frames whenever there are enough
    assert [sample_indices(n, 1) for n in range(1, 50)] == [[n // 2] for n in range(1, 50)]


def test_official_rule_holds_for_msrvtt_lengths() -> None:
    # MSR-VTT clips last 10-30 s (150+ frames even at 15 fps): the fallback never applies there
    assert all(is_regular(n, k) for n in range(150, 1000) for k in (1, 8))


# -- decoders ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    coded = write_video(root / "coded.mp4", 40)
    write_video(root / "texture.mp4", 45, width=96, height=64, pattern="texture")
    write_video(root / "short.mp4", 3)
    data = coded.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index at the end: cut off
    data = write_video(root / "indexed.mp4", 40, faststart=True).read_bytes()
    (root / "truncated_body.mp4").write_bytes(data[: len(data) // 2])  # index intact, frames cut off
    (root / "garbage.mp4").write_bytes(os.urandom(3000))
    (root / "empty.mp4").write_bytes(b"")
    return {p.stem: p for p in root.iterdir()} | {"missing": root / "missing.mp4"}


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("k", [1, 3, 8, 40, 50])
def test_decoded_frames_are_the_sampled_ones(clips: dict[str, Path], backend, k: int) -> None:
    frames = VideoFrameSource([clips["coded"]], k, backend).load(0)
    assert [frame_code(np.asarray(f)) for f in frames] == sample_indices(40, k)
    assert all(f.mode == "RGB" and f.size == (64, 48) for f in frames)


@pytest.mark.parametrize("name,n", [("coded", 40), ("texture", 45), ("short", 3)])
def test_decord_and_pyav_agree(clips: dict[str, Path], name: str, n: int) -> None:
    assert [b.frame_count(clips[name]) for b in BACKENDS] == [n, n]
    for k in (1, 8):
        decord_frames, pyav_frames = (VideoFrameSource([clips[name]], k, b).load(0) for b in BACKENDS)
        for a, b in zip(decord_frames, pyav_frames, strict=True):
            assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
@pytest.mark.parametrize("name", ["missing", "truncated", "truncated_body", "garbage", "empty"])
def test_bad_videos_raise_one_line_naming_the_file(clips: dict[str, Path], backend, name: str) -> None:
    with pytest.raises(BenchError) as info:
        VideoFrameSource([clips[name]], 8, backend).load(0)
    message = str(info.value)
    assert message.startswith(str(clips[name])) and "\n" not in message
    (count, error), = frame_counts([clips[name]], backend)  # the probe reads every packet: it fails too
    assert count is None and error.startswith(str(clips[name]))


def test_short_video_policy_error(clips: dict[str, Path]) -> None:
    with pytest.raises(BenchError, match="short.mp4"):
        VideoFrameSource([clips["short"]], 8, DecordBackend(), "error").load(0)
    assert len(VideoFrameSource([clips["short"]], 3, DecordBackend(), "error").load(0)) == 3


def test_fingerprint_separates_frame_counts_and_backends(clips: dict[str, Path]) -> None:
    prints = {
        VideoFrameSource([clips["coded"]], k, b, p).fingerprint()
        for k in (1, 8) for b in BACKENDS for p in ("centres", "error")
    }
    assert len(prints) == 8


def test_backend_resolution(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_backend("auto").name == "decord"
    with pytest.raises(BenchError, match="unknown video backend"):
        resolve_backend("opencv")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "decord" else real(name, *a))
    with caplog.at_level(logging.WARNING):
        assert resolve_backend("auto").name == "pyav"
    assert "decord is not installed" in caplog.text
    with pytest.raises(BenchError, match="pip install decord"):
        resolve_backend("decord")


# -- dual softmax and metrics -----------------------------------------------------------------
def reference_recalls(t2v: torch.Tensor, v2t: torch.Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Diagonal positives, ranks by full sort: t2v rows are captions, v2t columns are videos."""
    out = {}
    for k in ks:
        out[f"i2t_R@{k}"] = 100 * np.mean([j in np.argsort(-v2t[:, j].numpy(), kind="stable")[:k] for j in range(v2t.shape[1])])
    for k in ks:
        out[f"t2i_R@{k}"] = 100 * np.mean([i in np.argsort(-t2v[i].numpy(), kind="stable")[:k] for i in range(t2v.shape[0])])
    return out


def test_dual_softmax_by_hand() -> None:
    scores = torch.tensor([[0.9, 0.2, 0.1], [0.8, 0.7, 0.3], [0.4, 0.5, 0.6]])
    t2v, v2t = dual_softmax(scores)
    e = [[math.exp(x) for x in row] for row in scores.tolist()]
    for t in range(3):
        for v in range(3):
            over_texts = e[t][v] / sum(e[u][v] for u in range(3))
            over_videos = e[t][v] / sum(e[t][w] for w in range(3))
            assert t2v[t, v].item() == pytest.approx(scores[t, v].item() * over_texts, rel=1e-6)
            assert v2t[t, v].item() == pytest.approx(scores[t, v].item() * over_videos, rel=1e-6)


def test_recalls_with_and_without_dual_softmax() -> None:
    generator = torch.Generator().manual_seed(0)
    videos = F.normalize(torch.randn(60, 16, generator=generator), dim=-1)
    texts = F.normalize(videos + 1.2 * torch.randn(60, 16, generator=generator), dim=-1)
    hubs = F.normalize(videos[:5].mean(0), dim=-1)
    videos[5:10] = F.normalize(videos[5:10] + 2 * hubs, dim=-1)  # videos that attract many captions
    diagonal = torch.arange(60)
    scores = texts @ videos.T

    plain = recalls_from_ranks(video_text_ranks(texts, videos, diagonal, use_dual_softmax=False))
    assert plain == retrieval_recalls(videos, texts, diagonal)
    assert plain == pytest.approx(reference_recalls(scores, scores) | {"mean_R": plain["mean_R"]})

    dsl = recalls_from_ranks(video_text_ranks(texts, videos, diagonal, use_dual_softmax=True))
    expected = reference_recalls(scores * scores.softmax(dim=0), (scores.T * scores.T.softmax(dim=0)).T)
    assert {k: dsl[k] for k in expected} == pytest.approx(expected)
    assert dsl["mean_R"] == pytest.approx(sum(expected.values()) / 6)
    swapped = reference_recalls(scores * scores.softmax(dim=1), scores * scores.softmax(dim=0))
    assert swapped != expected and dsl != plain  # the axes and the re-ranking both matter here


# -- annotations ------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        for i, (video, sentence) in enumerate(rows):
            writer.writerow([f"ret{i}", video.replace("video", "msr"), video, sentence])
    return path


def test_annotation_readers(tmp_path: Path) -> None:
    rows = [("video7020", "a woman, talking"), ("video7021", "a dog runs")]
    from_csv = read_annotations(write_csv(tmp_path / "test.csv", rows))
    (tmp_path / "test.json").write_text(json.dumps([{"video": f"{v}.mp4", "caption": c} for v, c in rows]))
    assert read_annotations(tmp_path / "test.json") == from_csv
    assert [(c.video, c.text) for c in from_csv] == [("video7020.mp4", "a woman, talking"), ("video7021.mp4", "a dog runs")]

    write_csv(tmp_path / "hole.csv", [*rows, ("", "a caption without a video")])
    with pytest.raises(BenchError, match=r"hole\.csv: line 4 lacks a video_id"):
        read_annotations(tmp_path / "hole.csv")
    (tmp_path / "cols.csv").write_text("key,video,sentence\nret0,video1,x\n")
    with pytest.raises(BenchError, match="missing column.*video_id"):
        read_annotations(tmp_path / "cols.csv")
    (tmp_path / "bad.json").write_text(json.dumps([{"video": "v.mp4"}]))
    with pytest.raises(BenchError, match="item 0 lacks"):
        read_annotations(tmp_path / "bad.json")
    with pytest.raises(BenchError, match="annotation file not found.*prepare msrvtt"):
        read_annotations(tmp_path / "absent.csv")


# -- the task through the engine --------------------------------------------------------------
LENGTHS = {"video0": 40, "video1": 33, "video2": 57, "video3": 12, "video4": 3, "video5": 64}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("msrvtt")
    for seed, (name, n) in enumerate(LENGTHS.items()):
        write_video(root / "videos" / "all" / f"{name}.mp4", n, pattern="texture", seed=seed)
    write_csv(root / "MSRVTT_JSFUSION_test.csv", [(name, f"caption of {name}") for name in LENGTHS])
    return root


@pytest.fixture(scope="module")
def model():
    from model_zoo import load_model

    return load_model("openclip:tiny-clip", checkpoint="random")


def make_ctx(model, data_root: Path, workers: int = 0, cache_dir: Path | None = None):
    from internvl_bench.distributed import DistInfo
    from internvl_bench.runner import RunConfig, RunContext

    config = RunConfig(data_root=data_root, cache_dir=cache_dir, device="cpu", precision="fp32", batch_size=4,
                       workers=workers, progress=False)
    return RunContext(model, config, DistInfo())


def test_frame_averaging_matches_hand_computation(dataset: Path, model, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = sorted((dataset / "videos" / "all").glob("*.mp4"))
    source = VideoFrameSource(paths, 8, DecordBackend())
    expected, normalised_first = [], []
    with torch.no_grad():
        for i in range(len(source)):
            features = model.encode_image(model.preprocess(source.load(i), "crop"), normalize=False).float()
            expected.append(F.normalize(features.mean(0), dim=-1))
            normalised_first.append(F.normalize(F.normalize(features, dim=-1).mean(0), dim=-1))
    main = os.getpid()
    original = VideoFrameSource.load

    def load_in_worker_only(self, index):
        assert os.getpid() != main, "video decoded on the main process"
        return original(self, index)

    monkeypatch.setattr(VideoFrameSource, "load", load_in_worker_only)
    encoded = make_ctx(model, dataset, workers=2).encode_images(source, "crop")  # 4 videos x 8 frames per batch
    assert torch.allclose(encoded, torch.stack(expected), atol=1e-5)
    assert not torch.allclose(encoded, torch.stack(normalised_first), atol=1e-4)  # the order matters here


def test_evaluate_counts_short_videos(dataset: Path, model) -> None:
    ctx = make_ctx(model, dataset)
    result = MSRVTT(MSRVTT.Options(frames="8")).evaluate("8f", ctx)
    assert set(result.metrics) == {f"{d}_R@{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)} | {"mean_R"}
    assert result.n_samples == 6 and result.details["skipped_videos"] == 0
    # official rule fails for 33 (7 indices), 57 (last index 60), 12 (6 indices) and 3 frames (< 8)
    assert result.details["videos_shorter_than_frames"] == 1
    assert result.details["videos_resampled"] == sum(not is_regular(n, 8) for n in LENGTHS.values()) == 4
    assert list(result.data_files.values()) == [ctx.file_sha256(dataset / "MSRVTT_JSFUSION_test.csv")]
    with pytest.raises(BenchError, match="video1.mp4.*policy 'error'.*4 of 6 videos bad"):
        MSRVTT(MSRVTT.Options(frames="8", short_video_sampling="error")).evaluate("8f", ctx)


def test_bad_videos_stop_or_are_skipped(dataset: Path, model, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "all").symlink_to(dataset / "videos" / "all")
    names = [*LENGTHS, "video9"]  # a caption without a video
    write_csv(root / "MSRVTT_JSFUSION_test.csv", [(name, f"caption of {name}") for name in names])
    ctx = make_ctx(model, root)
    with pytest.raises(BenchError, match=r"video9\.mp4: video not found.*1 of 7 videos bad"):
        MSRVTT(MSRVTT.Options(frames="1")).evaluate("1f", ctx)

    result = MSRVTT(MSRVTT.Options(frames="1", skip_bad_videos=True)).evaluate("1f", ctx)
    assert result.n_samples == 6
    assert {k: result.details[k] for k in ("skipped_videos", "skipped_captions", "skipped_video_files")} == {
        "skipped_videos": 1, "skipped_captions": 1, "skipped_video_files": ["video9.mp4"]}
    complete = MSRVTT(MSRVTT.Options(frames="1")).evaluate("1f", make_ctx(model, dataset))
    assert result.metrics == complete.metrics  # same six videos and captions are scored


def test_cached_rerun_keeps_counts(dataset: Path, model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "all").symlink_to(dataset / "videos" / "all")
    write_csv(root / "MSRVTT_JSFUSION_test.csv", [(name, f"caption of {name}") for name in [*LENGTHS, "video9"]])
    task = MSRVTT(MSRVTT.Options(frames="8", skip_bad_videos=True))
    first = task.evaluate("8f", make_ctx(model, root, cache_dir=tmp_path / "cache"))

    def no_decoding(self, index):
        raise AssertionError("a cached run decoded a video")

    monkeypatch.setattr(VideoFrameSource, "load", no_decoding)
    again = task.evaluate("8f", make_ctx(model, root, cache_dir=tmp_path / "cache"))
    assert (again.metrics, again.details) == (first.metrics, first.details)
    assert first.details["skipped_videos"] == 1 and first.details["videos_shorter_than_frames"] == 1


def test_cli_run(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from internvl_bench.cli import main
    from internvl_bench.records import load_records

    base = ["run", "--task", "msrvtt", "--model", "openclip:tiny-clip", "--checkpoint", "random",
            "--data-root", str(dataset), "--no-cache", "--no-progress", "--batch-size", "4", "--workers", "1"]
    assert main([*base, "--frames", "1,8", "--output-dir", str(tmp_path / "on"), "--bootstrap-resamples", "200"]) == 0
    records = {r.variant: r for r in load_records(tmp_path / "on")}
    assert set(records) == {"1f", "8f"}
    assert_intervals(records["8f"], resamples=200)
    assert records["8f"].options["dual_softmax"] is True and records["8f"].details["frames"] == 8
    assert records["1f"].details["video_backend"] == "decord" and records["1f"].n_samples == 6

    assert main([*base, "--frames", "8", "--no-dual-softmax", "--output-dir", str(tmp_path / "off")]) == 0
    (off,) = load_records(tmp_path / "off")
    assert off.options["dual_softmax"] is False and off.task == "msrvtt"
    assert_intervals(off)

    capsys.readouterr()
    assert main([*base, "--frames", "8", "--video-dir", "nowhere", "--output-dir", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "nowhere/video0.mp4: video not found" in error and "\n" not in error


def test_prepare_downloads_only_the_test_split(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    import tasks.msrvtt as msrvtt

    server = tmp_path / "server"
    server.mkdir()
    with zipfile.ZipFile(server / "msrvtt_data.zip", "w") as archive:
        archive.write(dataset / "MSRVTT_JSFUSION_test.csv", "msrvtt_data/MSRVTT_JSFUSION_test.csv")
    with zipfile.ZipFile(server / "MSRVTT.zip", "w") as archive:
        for video in sorted((dataset / "videos" / "all").glob("*.mp4")):
            archive.write(video, f"MSRVTT/videos/all/{video.name}")
        archive.writestr("MSRVTT/videos/all/video9999.mp4", b"a training video")
    monkeypatch.setattr(msrvtt, "ANNOTATIONS_ZIP", (server / "msrvtt_data.zip").as_uri())
    monkeypatch.setattr(msrvtt, "VIDEOS_ZIP", (server / "MSRVTT.zip").as_uri())

    root = tmp_path / "data"
    with pytest.raises(BenchError, match="annotation file not found"):
        MSRVTT.prepare(root, download=False)
    report = MSRVTT.prepare(root, download=True)
    assert "6 captions" in report and "6 videos present" in report
    assert sorted(p.name for p in (root / "videos" / "all").iterdir()) == [f"{name}.mp4" for name in LENGTHS]
    assert sorted(p.name for p in root.iterdir()) == ["MSRVTT_JSFUSION_test.csv", "videos"]
    (root / "videos" / "all" / "video2.mp4").unlink()
    with pytest.raises(BenchError, match="1 of 6 MSR-VTT test videos missing.*video2.mp4"):
        MSRVTT.prepare(root, download=False)


def test_frame_counts_share_one_probe_of_the_videos(monkeypatch) -> None:
    """1f and 8f need the same annotations and frame counts: the videos are probed once per run."""
    import tasks.msrvtt as msrvtt

    calls = []
    monkeypatch.setattr(msrvtt, "read_annotations", lambda path: calls.append("read") or [msrvtt.Caption("v.mp4", "a cat")])
    monkeypatch.setattr(msrvtt, "frame_counts", lambda paths, backend, workers: calls.append("probe") or [(30, None)])
    task = msrvtt.MSRVTT()
    for _ in task.variants():
        task._videos(Path("/data/msrvtt"), 0)
    assert calls == ["read", "probe"]
