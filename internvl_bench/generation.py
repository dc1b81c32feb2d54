"""Generation requests, batched, cached and sharded: the chat analogue of ``encoding.py``.

A task hands ``RunContext.generate`` a list of ``GenerationRequest`` (an image of a source, the user's
question, generation options) and gets one ``Answer`` per request, in request order. In between:

- **templates**: the model wraps each question in its conversation template (``ChatModel.build_prompt``);
  a request whose text already holds the image placeholder is refused (one image per question);
- **batches**: requests are sorted by prompt length (stable), cut into batches of ``batch_size`` and
  left-padded by the model, every row computing what it would compute alone. The plan is the same on
  every rank and in every run, so a resumed run, a cached run and a torchrun run all see the same batches;
- **cache**: ``<cache root>/generations/<model fingerprint>/<batch key>.json`` holds one finished batch,
  written atomically. An answer is keyed by model fingerprint, the image's content hash, the exact prompt
  and the generation options; a killed run redoes only the batches it had not finished, a re-run none;
- **torchrun**: rank r generates the planned batches b with b % world_size == r; the answers are gathered,
  every rank returns all of them, rank 0 scores and writes;
- **batch invariance**: in bf16/fp16 a batch can flip a near-tie; each answer records its smallest
  top-1/top-2 logit margin, and ``verify_below`` re-generates answers under that margin alone (batch 1),
  keeps the batch-1 answer and reports how many changed.

Images are decoded and transformed in data-loader workers, each image once per batch (questions sharing
an image share its encoding); a bad image is one clean ``BenchError`` after the finished batches are stored,
or with ``skip_errors`` an ``Answer`` carrying the error.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from internvl_bench.cache import cache_key
from internvl_bench.data import ImageSource
from internvl_bench.distributed import DistInfo, gather_dict
from internvl_bench.errors import BenchError
from model_zoo.chat import ChatModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings of a request (greedy; the official evals' setting). Part of the cache key."""

    max_new_tokens: int = 128
    #: the end-of-sequence token is barred before this many tokens (InternVL's caption eval: 8)
    min_new_tokens: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    #: names the item in errors and predictions (e.g. a question id)
    id: str
    source: ImageSource
    index: int
    #: the user's turn; the model's conversation template wraps it
    prompt: str
    options: GenerationOptions = GenerationOptions()


@dataclass
class Answer:
    """One request's answer (or the reason it has none)."""

    id: str
    #: the full text fed to the tokenizer, image placeholder included
    prompt: str
    raw_output: str = ""
    token_ids: list[int] = field(default_factory=list)
    min_margin: float = math.inf
    finish_reason: str = ""
    #: set when the item was skipped (``skip_errors``)
    error: str | None = None

    def prediction(self, parsed: Any = None, target: Any = None, score: Any = None, **extra: Any) -> dict[str, Any]:
        """One line of the predictions file."""
        row = {"id": self.id, "prompt": self.prompt, "raw_output": self.raw_output, "token_ids": self.token_ids,
               "min_margin": None if math.isinf(self.min_margin) else self.min_margin, "parsed": parsed,
               "target": target, "score": score, **extra}
        if self.error is not None:
            row["error"] = self.error
        return row


class ResponseCache:
    """Finished batches of one model; ``root=None`` disables caching (nothing read or written)."""

    def __init__(self, root: Path | None, model_fingerprint: str) -> None:
        self.folder = None if root is None else Path(root) / model_fingerprint[:32]
        self.entries: dict[str, dict[str, Any]] = {}
        if self.folder is None or not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.json")):
            try:
                batch = json.loads(path.read_text(encoding="utf-8"))["entries"]
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)  # a damaged batch is regenerated, never trusted
                continue
            for key, entry in batch.items():
                # an answer re-checked at batch 1 wins over the batched one
                if key not in self.entries or entry.get("batch1") or not self.entries[key].get("batch1"):
                    self.entries[key] = entry

    def store(self, entries: dict[str, dict[str, Any]], tag: str = "") -> None:
        self.entries.update(entries)
        if self.folder is None or not entries:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(("\0".join(sorted(entries)) + tag).encode()).hexdigest()[:32] + ".json"
        tmp = self.folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"entries": entries}), encoding="utf-8")
        os.replace(tmp, self.folder / name)


@dataclass
class _Plan:
    prompts: list[str]
    keys: list[str | None]
    errors: list[str | None]
    #: (source number, item index) of each request's image; the same pair = the same image
    refs: list[tuple[int, int]]
    sources: list[ImageSource]
    batches: list[list[int]]


class _BatchImages(Dataset):
    """Worker-side loading: batch -> its distinct images as [3, S, S] tensors, or the error per image."""

    def __init__(self, plan: _Plan, batches: list[list[int]], transform) -> None:
        self.sources, self.refs, self.batches, self.transform = plan.sources, plan.refs, batches, transform

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, position: int):
        images: dict[tuple[int, int], tuple[torch.Tensor | None, str | None]] = {}
        for i in self.batches[position]:
            ref = self.refs[i]
            if ref in images:
                continue
            try:
                images[ref] = (self.transform(self.sources[ref[0]].load(ref[1])), None)
            except BenchError as exc:
                images[ref] = (None, str(exc))
        return position, list(images.items())


class GenerationEngine:
    """Answers requests with one chat model, one cache folder and one rank layout."""

    def __init__(self, model: ChatModel, cache_root: Path | None, dist_info: DistInfo, batch_size: int,
                 workers: int = 2, progress: bool = True, verify_below: float | None = None) -> None:
        self.model = model
        self.dist = dist_info
        self.batch_size = batch_size
        self.workers = workers
        self.progress = progress and dist_info.is_main
        self.verify_below = verify_below
        self.cache = ResponseCache(cache_root, model.fingerprint())
        #: facts of the last ``run``, recorded in the result's details
        self.stats: dict[str, Any] = {}

    # -- public -----------------------------------------------------------------------------------
    def run(self, requests: Sequence[GenerationRequest], skip_errors: bool = False, desc: str = "answers") -> list[Answer]:
        started = time.perf_counter()
        plan = self._plan(requests, skip_errors)
        # batches with an answer missing: the union over ranks, so ranks agree even when their caches differ
        missing = sorted(gather_dict({b: True for b, batch in enumerate(plan.batches)
                                      if any(plan.keys[i] not in self.cache.entries for i in batch)}, self.dist))
        mine = [b for b in missing if b % self.dist.world_size == self.dist.rank]
        fresh, skipped = self._generate(requests, plan, mine, skip_errors, desc)
        fresh = gather_dict(fresh, self.dist)
        skipped = gather_dict(skipped, self.dist)
        self.cache.entries.update(fresh)
        answers = self._answers(requests, plan, skipped)
        check = self._verify(requests, plan, answers) if self.verify_below is not None else None
        wall = time.perf_counter() - started
        tokens = sum(len(entry["token_ids"]) for entry in fresh.values())
        generated = sum(len(plan.batches[b]) for b in missing)
        self.stats = {
            "requests": len(requests), "generated_this_run": generated - sum(1 for i in skipped if plan.keys[i]),
            "from_cache": len(requests) - generated - sum(1 for i in skipped if not plan.keys[i]),
            "skipped": len(skipped), "generated_tokens": tokens,
            "tokens_per_s": round(tokens / wall, 2) if wall > 0 and tokens else None,
            "options": [json.loads(o) for o in sorted({json.dumps(asdict(r.options), sort_keys=True) for r in requests})],
        }
        if check is not None:
            self.stats["batch_invariance"] = check
        return answers

    # -- planning ---------------------------------------------------------------------------------
    def _plan(self, requests: Sequence[GenerationRequest], skip_errors: bool) -> _Plan:
        placeholder = self.model.image_placeholder
        fingerprint = self.model.fingerprint()
        prompts, keys, errors, lengths, refs = [], [], [], [], []
        token_counts: dict[str, int] = {}
        digests: dict[tuple[int, int], str | BenchError] = {}
        numbers: dict[int, int] = {}
        sources: list[ImageSource] = []
        for request in requests:
            if placeholder in request.prompt:
                raise BenchError(f"request {request.id}: the question already holds '{placeholder}'; "
                                 "the model's template places the one image itself")
            prompt = self.model.build_prompt(request.prompt)
            if prompt.count(placeholder) != 1:
                raise BenchError(f"request {request.id}: the prompt has {prompt.count(placeholder)} '{placeholder}' "
                                 "placeholders, expected exactly one")
            if prompt not in token_counts:
                token_counts[prompt] = len(self.model.tokenize_prompt(prompt))
            if id(request.source) not in numbers:
                numbers[id(request.source)] = len(sources)
                sources.append(request.source)
            ref = (numbers[id(request.source)], request.index)
            refs.append(ref)
            if ref not in digests:
                try:
                    digests[ref] = request.source.item_digest(request.index)
                except BenchError as exc:
                    if not skip_errors:
                        raise
                    digests[ref] = exc
            digest = digests[ref]
            prompts.append(prompt)
            lengths.append(token_counts[prompt])
            if isinstance(digest, BenchError):
                keys.append(None)
                errors.append(str(digest))
            else:
                keys.append(cache_key(kind="generation", model=fingerprint, image=digest, prompt=prompt,
                                      options=asdict(request.options)))
                errors.append(None)
        order = sorted((i for i in range(len(requests)) if errors[i] is None), key=lambda i: (lengths[i], i))
        batches = [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        return _Plan(prompts, keys, errors, refs, sources, batches)

    # -- generation -------------------------------------------------------------------------------
    def _generate(self, requests, plan: _Plan, todo: list[int], skip_errors: bool, desc: str):
        fresh: dict[str, dict[str, Any]] = {}
        skipped: dict[int, str] = {i: e for i, e in enumerate(plan.errors) if e is not None}
        tokens = 0
        total = sum(len(plan.batches[b]) for b in todo)
        bar = tqdm(total=total, desc=desc, unit="item", disable=None if self.progress and total else True)
        started = time.perf_counter()
        if todo:
            dataset = _BatchImages(plan, [plan.batches[b] for b in todo], self.model.image_transform())
            loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=min(self.workers, len(todo)),
                                collate_fn=_as_is, persistent_workers=False)
            for position, images in loader:
                batch = plan.batches[todo[position]]
                entries, bad = self._one_batch(requests, plan, batch, dict(images), skip_errors)
                skipped.update(bad)
                self.cache.store(entries)
                fresh.update(entries)
                tokens += sum(len(e["token_ids"]) for e in entries.values())
                bar.update(len(batch))
                elapsed = time.perf_counter() - started
                bar.set_postfix(tokens_per_s=f"{tokens / elapsed:.1f}" if elapsed > 0 else "-")
        bar.close()
        return fresh, skipped

    def _one_batch(self, requests, plan: _Plan, batch: list[int], images: dict, skip_errors: bool):
        bad: dict[int, str] = {}
        rows, pixels, slot = [], [], {}
        for i in batch:
            ref = plan.refs[i]
            tensor, error = images[ref]
            if error is not None:
                if not skip_errors:
                    raise BenchError(error)
                log.warning("skipped %s: %s", requests[i].id, error)
                bad[i] = error
                continue
            if ref not in slot:
                slot[ref] = len(pixels)
                pixels.append(tensor)
            rows.append(i)
        if not rows:
            return {}, bad
        answers = self.model.generate(torch.stack(pixels), [plan.prompts[i] for i in rows],
                                      max_new_tokens=[requests[i].options.max_new_tokens for i in rows],
                                      image_rows=[slot[plan.refs[i]] for i in rows],
                                      min_new_tokens=[requests[i].options.min_new_tokens for i in rows])
        entries = {plan.keys[i]: {"token_ids": a.token_ids, "text": a.text, "min_margin": _finite(a.min_margin),
                                  "finish_reason": a.finish_reason} for i, a in zip(rows, answers)}
        return entries, bad

    def _answers(self, requests, plan: _Plan, skipped: dict[int, str]) -> list[Answer]:
        answers = []
        for i, request in enumerate(requests):
            if i in skipped:
                answers.append(Answer(request.id, plan.prompts[i], error=skipped[i]))
                continue
            entry = self.cache.entries[plan.keys[i]]
            margin = entry["min_margin"]
            answers.append(Answer(request.id, plan.prompts[i], entry["text"], list(entry["token_ids"]),
                                  math.inf if margin is None else float(margin), entry["finish_reason"]))
        return answers

    # -- batch invariance -------------------------------------------------------------------------
    def _verify(self, requests, plan: _Plan, answers: list[Answer]) -> dict[str, Any]:
        """Re-generate answers whose margin is below ``verify_below`` alone; keep the batch-1 answer."""
        candidates = [i for i, a in enumerate(answers)
                      if a.error is None and a.min_margin < self.verify_below and not self.cache.entries[plan.keys[i]].get("batch1")]
        mine = [i for n, i in enumerate(candidates) if n % self.dist.world_size == self.dist.rank]
        fresh: dict[str, dict[str, Any]] = {}
        if mine:
            transform = self.model.image_transform()
            for i in mine:
                request = requests[i]
                pixels = transform(request.source.load(request.index))[None]
                (alone,) = self.model.generate(pixels, [plan.prompts[i]], max_new_tokens=request.options.max_new_tokens,
                                               min_new_tokens=request.options.min_new_tokens)
                fresh[plan.keys[i]] = {"token_ids": alone.token_ids, "text": alone.text,
                                       "min_margin": _finite(alone.min_margin), "finish_reason": alone.finish_reason,
                                       "batch1": True}
            self.cache.store(fresh, tag="batch1")
        fresh = gather_dict(fresh, self.dist)
        changed = 0
        for i in candidates:
            entry = fresh[plan.keys[i]]
            if entry["token_ids"] != answers[i].token_ids:
                changed += 1
            self.cache.entries[plan.keys[i]] = entry
            answers[i].raw_output, answers[i].token_ids = entry["text"], list(entry["token_ids"])
            answers[i].finish_reason = entry["finish_reason"]
            answers[i].min_margin = math.inf if entry["min_margin"] is None else float(entry["min_margin"])
        verified = sum(1 for i, a in enumerate(answers) if a.error is None and self.cache.entries[plan.keys[i]].get("batch1"))
        return {"margin_below": self.verify_below, "rechecked_this_run": len(candidates), "changed": changed,
                "answers_at_batch1": verified}


def _as_is(item):
    """Data-loader collate: keep the worker's (position, images) as it is."""
    return item


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else float(value)
