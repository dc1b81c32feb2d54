"""MSR-VTT 1k-A zero-shot video-text retrieval with 1 and 8 frames (paper Table C).

Paper: InternVL supplementary Table C. Dataset: MSR-VTT (Xu et al. 2016), the 1k-A test split
(JSFusion; 1,000 videos, one caption each, positives on the diagonal). Variants: ``1f``, ``8f``
(``--frames 1,8``; any positive frame count is allowed).

Layout under ``--data-root DIR`` (``internvl-bench prepare msrvtt --data-root DIR --download`` builds it)::

    DIR/MSRVTT_JSFUSION_test.csv    columns key, vid_key, video_id, sentence (CLIP4Clip's msrvtt_data.zip)
    DIR/videos/all/<video_id>.mp4   the MSR-VTT release (Frozen-in-Time's MSRVTT.zip, MSRVTT/videos/all)

``--annotations`` may instead name a ``.json`` list of ``{"video": "<file>", "caption": "..."}``
(the official script's metadata); ``video`` is relative to ``--video-dir``.

Protocol (InternVL ``video_retrieval/test_msrvtt.py``):
- Frames: ``interval = ceil(N / k)``, indices ``range(0, N, interval) + interval // 2``, decoded with
  decord (``internvl_bench.video``; PyAV gives identical frames where decord is missing). The official
  script asserts when that rule does not give k in-range indices (only videos under ~3.5 s for k = 8;
  never on MSR-VTT); ``--short-video-sampling centres`` (default) samples them at fractional interval
  centres instead and counts them in ``details`` (``videos_resampled``; ``videos_shorter_than_frames``
  for N < k, whose frames repeat); ``error`` treats them as bad videos.
- Video embedding: mean of the per-frame **un-normalised** image features, then L2-normalised
  (the runner averages frame lists). Captions as written; the model's text convention applies.
- Preprocessing: ``crop`` (the official script's ``CLIPImageProcessor``: shortest side to S, centre crop).
- Scores ``S = T @ V.T`` [captions, videos] in float32 (the official script computes them in bf16).
- Dual-softmax re-ranking (``--dual-softmax``, on by default as in the official script), with the raw
  cosine similarities (no temperature or logit scale) and a different matrix per direction:
  text->video ranks ``S * softmax(S, dim=0)`` (softmax over captions, per video); video->text ranks
  ``S.T * softmax(S.T, dim=0)`` (softmax over videos, per caption), i.e. ``S * softmax(S, dim=1)`` in
  [captions, videos] layout. It uses statistics of the whole test set (skipped items excluded).

Metrics (percent), with the engine's key names -- the video plays the image role:
``i2t_R@1/5/10`` = video->text, ``t2i_R@1/5/10`` = text->video, ``mean_R`` = mean of the six.

Intervals (every metric): the bootstrap resamples queries -- video->text recalls over the video
queries, text->video over the caption queries, ``mean_R`` over both drawn in the same resample. The
dual-softmax re-ranking uses whole-set statistics: it is computed once on the full test set and the
bootstrap resamples the re-ranked per-query ranks (candidates and softmax normalisers stay those of the
point estimate; the interval covers the choice of queries, not of the candidate pool).

Bad input: a missing, unreadable or truncated video stops the run with one line naming the file,
unless ``--skip-bad-videos``: such videos and their captions are then left out of scoring and counted
in ``details`` (``skipped_videos``, ``skipped_captions``, ``skipped_video_files``).
"""
from __future__ import annotations

import csv
import json
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from internvl_bench.data import file_sha256
from internvl_bench.download import download_file
from internvl_bench.errors import BenchError
from internvl_bench.metrics.retrieval import QueryRanks, ranks_from_scores, recall_statistic, recalls_from_ranks
from internvl_bench.runner import RunContext
from internvl_bench.task import Task, TaskResult, register_task, split_list
from internvl_bench.video import (
    BACKENDS,
    SAMPLING_POLICIES,
    VideoFrameSource,
    frame_counts,
    is_regular,
    resolve_backend,
)

ANNOTATIONS = "MSRVTT_JSFUSION_test.csv"
VIDEO_DIR = "videos/all"
ANNOTATIONS_ZIP = "https://github.com/ArrowLuo/CLIP4Clip/releases/download/v0.0/msrvtt_data.zip"
VIDEOS_ZIP = "https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip"


@dataclass(frozen=True)
class Caption:
    video: str  # file name relative to the video folder
    text: str


@register_task
class MSRVTT(Task):
    """MSR-VTT 1k-A zero-shot video-text retrieval, 1 and 8 frames (Table C)."""

    name = "msrvtt"
    version = "1"
    table = "C"

    @dataclass
    class Options:
        frames: str = field(default="1,8", metadata={"help": "comma-separated frame counts per video; variant '<k>f'"})
        annotations: str = field(
            default=ANNOTATIONS, metadata={"help": "caption file under the data root: JSFusion .csv or {video, caption} .json"}
        )
        video_dir: str = field(default=VIDEO_DIR, metadata={"help": "video folder under the data root"})
        dual_softmax: bool = field(default=True, metadata={"help": "dual-softmax re-ranking (official script: on)"})
        preprocess: str = field(
            default="crop", metadata={"help": "frame preprocessing (crop: the official CLIPImageProcessor)", "choices": ["squash", "crop"]}
        )
        video_backend: str = field(
            default="auto", metadata={"help": "decoder (auto: decord, else PyAV)", "choices": ["auto", *BACKENDS]}
        )
        short_video_sampling: str = field(
            default="centres",
            metadata={"help": "where the official frame rule fails (N < k, some short N)", "choices": list(SAMPLING_POLICIES)},
        )
        skip_bad_videos: bool = field(
            default=False, metadata={"help": "score without unreadable videos (and their captions), counted in the result"}
        )

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._videos_of: tuple[Path, tuple] | None = None

    def variants(self) -> list[str]:
        return [f"{k}f" for k in _frame_counts(self.options.frames)]

    def _videos(self, root: Path, workers: int) -> tuple:
        """Captions, video names, caption->video index, paths, backend and frame-count probes.

        None of it depends on the frame count, so the 1f and 8f variants share one annotation read
        and one probe of every video (memoised per data root on this task instance).
        """
        if self._videos_of is None or self._videos_of[0] != root:
            captions = read_annotations(root / self.options.annotations)
            names = list(dict.fromkeys(caption.video for caption in captions))
            position = {name: i for i, name in enumerate(names)}
            text_to_video = torch.tensor([position[caption.video] for caption in captions], dtype=torch.long)
            paths = [root / self.options.video_dir / name for name in names]
            backend = resolve_backend(self.options.video_backend)
            probes = frame_counts(paths, backend, workers)
            self._videos_of = (root, (captions, names, text_to_video, paths, backend, probes))
        return self._videos_of[1]

    def evaluate(self, variant: str, ctx: RunContext) -> TaskResult:
        options = self.options
        k = int(variant.removesuffix("f"))
        root = _data_root(ctx)
        annotation_path = root / options.annotations
        captions, names, text_to_video, paths, backend, probes = self._videos(root, ctx.config.workers)
        refused = options.short_video_sampling == "error"
        bad = [error or f"{paths[i]}: the official {k}-frame sampling fails for its {n} frames (policy 'error')"
               for i, (n, error) in enumerate(probes) if error or (refused and not is_regular(n, k))]
        if bad and not options.skip_bad_videos:
            raise BenchError(f"{bad[0]} [{len(bad)} of {len(paths)} videos bad; --skip-bad-videos scores without them]")

        source = VideoFrameSource(paths, k, backend, options.short_video_sampling)
        video_emb = ctx.encode_images(
            source, options.preprocess, skip_errors=options.skip_bad_videos, desc=f"videos ({k} frames)"
        )
        text_emb = ctx.encode_texts([caption.text for caption in captions], desc="captions")

        kept = ~torch.isnan(video_emb).any(dim=1)
        if not bool(kept.any()):
            raise BenchError(f"{root / options.video_dir}: no readable video among {len(paths)}; check the video folder")
        text_kept = kept[text_to_video]
        new_index = torch.cumsum(kept.long(), 0) - 1
        ranks = video_text_ranks(
            text_emb[text_kept], video_emb[kept], new_index[text_to_video[text_kept]], options.dual_softmax
        )
        counts = [n for (n, _), keep in zip(probes, kept.tolist()) if keep and n is not None]
        details = {
            "frames": k,
            "video_backend": backend.name,
            "n_videos": int(kept.sum()),
            "n_captions": int(text_kept.sum()),
            "skipped_videos": int((~kept).sum()),
            "skipped_captions": int((~text_kept).sum()),
            "skipped_video_files": [names[i] for i in (~kept).nonzero().flatten().tolist()],
            "videos_shorter_than_frames": sum(n < k for n in counts),
            "videos_resampled": sum(not is_regular(n, k) for n in counts),
        }
        return TaskResult(
            metrics=recalls_from_ranks(ranks),
            intervals=ctx.intervals(ranks.units, recall_statistic(ranks)),
            n_samples=details["n_videos"],
            data_files={str(annotation_path): ctx.file_sha256(annotation_path)},
            details=details,
        )

    @classmethod
    def prepare(cls, data_root: Path, download: bool) -> str:
        annotation_path = data_root / ANNOTATIONS
        if download and not annotation_path.is_file():
            _extract_from_zip(ANNOTATIONS_ZIP, data_root, {ANNOTATIONS: annotation_path})
        captions = read_annotations(annotation_path)
        video_root = data_root / VIDEO_DIR
        names = list(dict.fromkeys(caption.video for caption in captions))
        missing = [name for name in names if not (video_root / name).is_file()]
        if download and missing:
            _extract_from_zip(VIDEOS_ZIP, data_root, {name: video_root / name for name in missing})
            missing = [name for name in names if not (video_root / name).is_file()]
        if missing:
            raise BenchError(
                f"{video_root}: {len(missing)} of {len(names)} MSR-VTT test videos missing (e.g. {missing[0]}); "
                f"re-run with --download on a machine with internet, or unzip {VIDEOS_ZIP} and copy MSRVTT/videos/all there"
            )
        return (
            f"msrvtt: {annotation_path} ({len(captions)} captions, sha256 {file_sha256(annotation_path)}); "
            f"{len(names)} videos present under {video_root}"
        )


def read_annotations(path: Path) -> list[Caption]:
    """Captions with their video file, from the JSFusion csv or the official script's json list."""
    hint = f"run 'internvl-bench prepare msrvtt --data-root {path.parent} --download' or see the msrvtt docs"
    if not path.is_file():
        raise BenchError(f"{path}: MSR-VTT annotation file not found; {hint}")
    try:
        if path.suffix == ".json":
            captions = _read_json(path)
        else:
            captions = _read_csv(path)
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); re-download it") from None
    if not captions:
        raise BenchError(f"{path}: no captions; {hint}")
    return captions


def _read_csv(path: Path) -> list[Caption]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"video_id", "sentence"} - set(reader.fieldnames or ())
        if missing:
            raise BenchError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected key, vid_key, video_id, sentence")
        captions = []
        for row in reader:
            video, text = (row.get("video_id") or "").strip(), (row.get("sentence") or "").strip()
            if not video or not text:
                raise BenchError(f"{path}: line {reader.line_num} lacks a video_id or a sentence; fix or remove that line")
            captions.append(Caption(f"{video}.mp4", text))
    return captions


def _read_json(path: Path) -> list[Caption]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}); re-download it") from None
    if not isinstance(items, list):
        raise BenchError(f"{path}: expected a list of {{video, caption}} objects")
    captions = []
    for number, item in enumerate(items):
        video = item.get("video") if isinstance(item, dict) else None
        text = item.get("caption") if isinstance(item, dict) else None
        if not isinstance(video, str) or not video.strip() or not isinstance(text, str) or not text.strip():
            raise BenchError(f"{path}: item {number} lacks a 'video' or a 'caption' string; fix or remove it")
        captions.append(Caption(video.strip(), text.strip()))
    return captions


def dual_softmax(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[n_text, n_video] cosine scores -> (text->video scores, video->text scores), same layout.

    Each direction weights a score by a softmax over the *other* side's candidates for the same
    target (no temperature): a video that many captions match strongly stops being every caption's
    top hit.
    """
    return scores * scores.softmax(dim=0), scores * scores.softmax(dim=1)


def video_text_ranks(
    text_emb: torch.Tensor, video_emb: torch.Tensor, text_to_video: torch.Tensor, use_dual_softmax: bool
) -> QueryRanks:
    """Each query's best-positive rank (``i2t`` = video queries) from normalised embeddings [n_text, D],
    [n_video, D], on the re-ranked scores when asked; ``recalls_from_ranks`` gives R@1/5/10 both ways."""
    scores = text_emb.float() @ video_emb.float().T
    if not use_dual_softmax:
        return ranks_from_scores(scores, text_to_video)
    t2v_scores, v2t_scores = dual_softmax(scores)
    return QueryRanks(i2t=ranks_from_scores(v2t_scores, text_to_video).i2t,
                      t2i=ranks_from_scores(t2v_scores, text_to_video).t2i)


def _frame_counts(value: str) -> list[int]:
    try:
        counts = [int(item) for item in split_list(value)]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise BenchError(f"--frames '{value}': give positive integers, e.g. 1,8")
    return counts


def _data_root(ctx: RunContext) -> Path:
    if ctx.config.data_root is None:
        raise BenchError("msrvtt needs --data-root DIR (DIR/MSRVTT_JSFUSION_test.csv, DIR/videos/all/*.mp4)")
    return Path(ctx.config.data_root)


def _extract_from_zip(url: str, data_root: Path, targets: dict[str, Path]) -> None:
    """Download ``url`` and extract the members whose base names are keys of ``targets`` to their paths."""
    archive = download_file(url, data_root / Path(url).name)
    with zipfile.ZipFile(archive) as handle:
        for member in handle.infolist():
            destination = targets.get(Path(member.filename).name)
            if destination is None or member.is_dir():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(destination.name + ".part")
            with handle.open(member) as source, open(partial, "wb") as out:
                shutil.copyfileobj(source, out, length=1 << 20)
            partial.replace(destination)
    archive.unlink()
