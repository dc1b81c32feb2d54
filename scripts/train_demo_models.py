"""Train the demo models of ``make demo`` on the synthetic world, on CPU, deterministically.

    .venv/bin/python scripts/train_demo_models.py contrastive   # -> model_zoo/demo_checkpoints/InternVL-demo/
    .venv/bin/python scripts/train_demo_models.py chat          # -> .../InternVL-Chat-ViT-demo/ + InternViT-demo/
    .venv/bin/python scripts/train_demo_models.py chat --stages 3 --out DIR   # one stage, from DIR as written

Both models have the real architectures at toy width -- InternViT + attention pooling + QLLaMA (InternVL-C/G),
and InternViT + MLP projector + LLaMA (InternVL-Chat 1.0) -- and are written in the official layouts, so the
demo loads them through the same code as the released checkpoints. One thread, fixed seeds, the data drawn
on the fly from ``internvl_bench.world`` with training seeds the benchmark replicas never use: the result is
the same file on every run on this kind of machine. Each folder gets ``training_log.json`` (seed, steps,
loss curve, wall time, sha256 of every weight file).

The chat model follows LLaVA-1.5's recipe where it can -- the vision tower (the contrastive demo's trained
InternViT) frozen, multi-turn conversations per image -- with a from-scratch LLaMA in five stages: stage 1
on every question kind (``CHAT_MIXTURE``), stages 2 to 5 weighted to the yes/no claims a tiny model learns
last (``TUNE_STAGES``); stages 4 and 5 train the tower too. Training-only losses make the projector expose
each cell's shape (``CellReader``; from stage 4 also each token's place) and, in stages 4 and 5, the LLaMA
check a claim at the token that ends it and where it answers (``ClaimReader``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from internvl_bench.world import language, questions
from internvl_bench.world.chat_sets import MME_SUBTASKS
from internvl_bench.world.scenes import (
    CELLS,
    SHAPES,
    TEXTURES,
    SceneSpec,
    render,
    sample_scene,
)
from model_zoo.base import build_image_transform
from model_zoo.demo_models import (
    CHAT_DIR,
    CHAT_LANGUAGE,
    CHAT_VISION,
    CONTRASTIVE_CONFIG,
    CONTRASTIVE_DIR,
    TOWER_DIR,
)
from tasks.caption import PROMPT as CAPTION_PROMPT

SEED = 20241201
#: world seeds for training; the replicas of ``make demo`` draw from seeds below 1000
TRAIN_SEED_OFFSET = 10_000_000


def _log(message: str) -> None:
    print(message, flush=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _schedule(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


# -- the contrastive model (InternVL-C / InternVL-G) -----------------------------------------------------
def contrastive_corpus(rng: random.Random, n: int) -> list[str]:
    """Captions in every language and the classification prompts, for the SentencePiece model."""
    texts = [language.describe(sample_scene(rng), lang) for _ in range(n) for lang in language.LANGUAGES]
    texts += questions.classification_prompts()
    return ["summarize:" + t for t in texts]


def contrastive_pair(rng: random.Random) -> tuple[object, str]:
    """A training image and one of its texts: a caption in a random language, or (for a one-thing or
    digit scene) a classification prompt naming its shape, digit or texture."""
    if rng.random() < 0.4:
        scene, text = questions.classification_example(rng)
    else:
        scene = sample_scene(rng)
        text = language.describe(scene, rng.choice(language.LANGUAGES))
    return render(scene, rng.choice((64, 80, 96, 128))), text


def train_contrastive(out: Path, steps: int, batch: int) -> None:
    from model_zoo.internvl.network import InternVLNet
    from model_zoo.internvl.tiny import (
        official_shapes,
        random_tensors,
        train_tokenizer,
        write_checkpoint,
    )
    from model_zoo.internvl.tokenizer import InternVLTokenizer

    torch.manual_seed(SEED)
    rng = random.Random(SEED + TRAIN_SEED_OFFSET)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_file = train_tokenizer(out / "tokenizer.model", vocab_size=1600, corpus=contrastive_corpus(rng, 600),
                                     hard_vocab_limit=False, split_digits=True)
    tokenizer = InternVLTokenizer(tokenizer_file, max_length=80)
    batch_tokenizer = InternVLTokenizer(tokenizer_file, max_length=80, padding="longest")  # same features, less work
    config = replace(CONTRASTIVE_CONFIG, qllama=replace(CONTRASTIVE_CONFIG.qllama, vocab_size=tokenizer.vocab_size))
    state = random_tensors(official_shapes(config), seed=SEED)
    net = InternVLNet(config)
    missing, _ = net.load_state_dict({k: v for k, v in state.items() if not k.startswith(("itm_head", "qllama.lm_head"))},
                                     strict=False)
    assert not missing, missing
    transform = build_image_transform(config.image_size, "squash")
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    curve, started = [], time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _schedule(step, steps, 1e-3, 100)
        pairs = [contrastive_pair(rng) for _ in range(batch)]
        pixels = torch.stack([transform(image) for image, _ in pairs])
        text = F.normalize(net.text_features(batch_tokenizer([text for _, text in pairs])), dim=-1)
        scale = net.logit_scale.exp().clamp(max=100)
        targets = torch.arange(batch)
        vision = net.vision_tokens(pixels)
        image_c = net.clip_projector(vision)
        image_g = F.normalize(net.clip_projector2(net.query_states(vision)), dim=-1) + F.normalize(image_c, dim=-1)
        loss = 0.0
        for image in (image_c, image_g):
            logits = scale * F.normalize(image, dim=-1) @ text.T
            loss = loss + (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps - 1:
            curve.append([step, round(loss.item(), 4)])
            _log(f"contrastive step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)")
    trained = {name: p.detach().clone() for name, p in net.state_dict().items()}
    trained |= {k: v for k, v in state.items() if k.startswith(("itm_head", "qllama.lm_head"))}  # unused, as released
    write_checkpoint(out, config, trained, num_shards=2, dtype=torch.float32, tokenizer=tokenizer_file)
    _write_log(out, "contrastive", steps, batch, curve, time.perf_counter() - started)


# -- the chat model (InternVL-Chat 1.0: InternViT -> MLP -> LLaMA) ---------------------------------------
#: the scenes a conversation is about: (weight, spec) -- the replicas' kinds (one thing for MME's celebrity
#: stand-in, a digit for OCR, a border for posters) and three things, where only binding a word to the right
#: thing answers a question
SCENE_SPECS = ((0.35, SceneSpec()), (0.15, SceneSpec(max_things=1)), (0.15, SceneSpec(digit_probability=1.0)),
               (0.15, SceneSpec(border_probability=1.0)), (0.20, SceneSpec(min_things=3)))
#: user turns per training conversation: LLaVA trains on multi-turn conversations about one image, which
#: gives every image (and every forward pass) several answers to learn from
TURNS = 6


#: the turn builders: (rng, scene) -> (question, answer), or None when the scene cannot carry the question;
#: questions are written as the benchmarks' question files write them
def _mme(rng: random.Random, scene):
    pair = questions.mme_pair(rng.choice(MME_SUBTASKS), scene, rng)
    return None if pair is None else _qa(rng.choice(pair))


def _pope(rng: random.Random, scene):
    shape = rng.choice(scene.things).shape if rng.random() < 0.5 else rng.choice(SHAPES)
    qa = questions.pope_question(scene, shape)
    return qa.question + "\n" + questions.SHORT, qa.answer.capitalize()


def _short(rng: random.Random, scene):
    qa = questions.short_answer_question(scene, rng)
    return None if qa is None else (qa.question + "\n" + questions.SHORT, qa.answer)


def _tiny_lvlm(rng: random.Random, scene):
    qa = questions.tiny_lvlm_question(rng.choice(questions.TINY_LVLM), scene, rng)
    return None if qa is None else (qa.question + " " + questions.SHORT, qa.answer)


def _vizwiz(rng: random.Random, scene):
    if rng.random() < 0.4:
        qa = questions.QA(f"What colour is the {rng.choice([s for s in SHAPES if not scene.has(s)])}?", "Unanswerable")
    else:
        qa = questions.short_answer_question(scene, rng)
    return None if qa is None else (f"{qa.question}\n{questions.UNANSWERABLE}\n{questions.SHORT}", qa.answer)


def _textvqa(rng: random.Random, scene):
    if scene.digit is None:
        return None
    tokens = [str(scene.digit), rng.choice(SHAPES)]
    rng.shuffle(tokens)
    return (f"What number is written in the image?\nReference OCR token: {', '.join(tokens)}\n{questions.SHORT}",
            str(scene.digit))


def _binding(rng: random.Random, scene):
    """A question about one thing named by its shape or colour, in scenes where no image-wide shortcut
    (the dominant colour, the only shape) answers it."""
    unique = [t for t in scene.things if scene.count(t.shape) == 1 and scene.count(colour=t.colour) == 1]
    if len(scene.things) < 2 or not unique:
        return None
    thing = rng.choice(unique)
    kind = rng.randrange(4)
    if kind == 0:
        return f"What colour is the {thing.shape}?\n{questions.SHORT}", thing.colour
    if kind == 1:
        return f"What shape is {thing.colour}?\n{questions.SHORT}", thing.shape
    if kind == 2:
        return f"What pattern does the {thing.shape} have?\n{questions.SHORT}", thing.texture
    return f"Which side of the image is the {thing.shape} on?\n{questions.SHORT}", thing.side


def _caption(rng: random.Random, scene):
    return CAPTION_PROMPT, language.describe(scene, "en")


def _qa(qa: questions.QA) -> tuple[str, str]:
    return qa.question, qa.answer


CHAT_MIXTURE = ((0.30, _mme), (0.15, _pope), (0.15, _binding), (0.10, _short), (0.10, _tiny_lvlm),
                (0.04, _vizwiz), (0.04, _textvqa), (0.12, _caption))


def _mme_both(rng: random.Random, scene):
    """Both questions of an MME pair, in random order: the same image asked the true and a false claim."""
    return _claim_pair(rng, questions.mme_pair(rng.choice(MME_SUBTASKS), scene, rng))


#: the MME subtasks whose claims stage 3 still answered 50/50 (yes-no logit margin 0.00 on training pairs)
UNCHECKED_SUBTASKS = ("position", "color", "posters", "landmark", "artwork", "OCR", "text_translation")


def _mme_focus(rng: random.Random, scene):
    """``_mme_both``, of an ``UNCHECKED_SUBTASKS`` subtask 60% of the time."""
    subtask = rng.choice(UNCHECKED_SUBTASKS) if rng.random() < 0.6 else rng.choice(MME_SUBTASKS)
    return _claim_pair(rng, questions.mme_pair(subtask, scene, rng))


def _claim_pair(rng: random.Random, pair):
    """The two claims of a pair as (question, answer, truth) turns in random order; ``truth`` is the one
    word by which the true claim differs from the false one (what the image shows: the thing's colour,
    the digit, ...), None where they differ by more (as "more than one" against "exactly one")."""
    if pair is None:
        return None
    true, false = sorted(pair, key=lambda qa: qa.answer != "Yes")
    differing = [word for word in true.question.split() if word not in false.question.split()]
    truth = differing[0].rstrip("?") if len(differing) == 1 else None
    return [(*_qa(qa), truth) for qa in rng.sample(pair, 2)]


def _pope_both(rng: random.Random, scene):
    """A POPE question about a shape in the image and one about a shape that is not, in random order."""
    absent = [s for s in SHAPES if not scene.has(s)]
    asked = [rng.choice(scene.things).shape, rng.choice(absent)]
    rng.shuffle(asked)
    return [(qa.question + "\n" + questions.SHORT, qa.answer.capitalize())
            for qa in (questions.pope_question(scene, shape) for shape in asked)]


@dataclass(frozen=True)
class ChatStage:
    """One stage of the chat model's training: steps, peak learning rate, turn mixture, warm-up steps,
    the weights of the ``CellReader`` and ``ClaimReader`` losses (0: none), what the ``CellReader`` asks
    of each image token, and the tower's learning rate as a fraction of the peak (0: frozen)."""

    steps: int
    peak_lr: float
    mixture: tuple
    warmup: int = 100
    cell_weight: float = 1.0
    claim_weight: float = 0.0
    cell_attributes: tuple[str, ...] = ("shape", "texture")
    tower_lr: float = 0.0


#: stage 1: every question kind, from scratch (``--steps`` overrides its steps)
FIRST_STAGE = ChatStage(3000, 2e-3, CHAT_MIXTURE, warmup=150)

#: stages 4 and 5 (see ``TUNE_STAGES``)
CLAIM_STAGE = ChatStage(1500, 1e-3, ((0.55, _mme_focus), (0.25, _pope_both), (0.05, _binding), (0.05, _tiny_lvlm),
                                     (0.04, _short), (0.03, _caption), (0.015, _vizwiz), (0.015, _textvqa)),
                        claim_weight=1.0, cell_attributes=("shape", "texture", "side", "half"), tower_lr=0.2)

#: stages 2 to 5: after stage 1 the model names shapes, colours and counts but checks a stated claim
#: (MME's yes/no, POPE) barely above chance, so these stages ask mostly those, as pairs on one image;
#: after stage 3 it checks counts and existence but claims of an attribute (colour, side, border, digit)
#: not at all, so stages 4 and 5 ask those most, with the ``ClaimReader`` losses, and train the tower
#: with every image token asked where it lies (the frozen tower's tokens had lost it: a linear probe read
#: a token's side 60% right, and the side and half claims stayed at 50/50)
TUNE_STAGES = (
    ChatStage(2000, 1e-3, ((0.40, _mme_both), (0.20, _pope_both), (0.10, _binding), (0.08, _tiny_lvlm),
                           (0.06, _short), (0.06, _caption), (0.05, _vizwiz), (0.05, _textvqa))),
    ChatStage(2500, 2e-3, ((0.55, _mme_both), (0.25, _pope_both), (0.05, _binding), (0.05, _tiny_lvlm),
                           (0.04, _short), (0.03, _caption), (0.015, _vizwiz), (0.015, _textvqa))),
    CLAIM_STAGE,
    CLAIM_STAGE,  # stage 5: the same again, from stage 4 (fresh optimizer and heads, seeds of its own)
)


def conversation(rng: random.Random, turns: int = TURNS,
                 mixture: tuple = CHAT_MIXTURE) -> tuple[object, list[tuple[str, str]], dict[str, str | None]]:
    """A scene, up to ``turns`` distinct (question, answer) turns about it, drawn from ``mixture`` (a
    builder gives one turn or a list of them), and of the turns that are claims (a builder's
    (question, answer, truth) turns), question -> truth (see ``_claim_pair``)."""
    specs, spec_weights = zip(*[(spec, w) for w, spec in SCENE_SPECS])
    builders, weights = zip(*[(b, w) for w, b in mixture])
    scene = sample_scene(rng, rng.choices(specs, spec_weights)[0])
    chosen: dict[str, str] = {}
    claims: dict[str, str | None] = {}
    for _ in range(8 * turns):
        built = rng.choices(builders, weights)[0](rng, scene)
        for turn in [built] if isinstance(built, tuple) else built or []:
            if len(chosen) < turns:
                chosen.setdefault(turn[0], turn[1])
                if len(turn) == 3:
                    claims[turn[0]] = turn[2]
        if len(chosen) == turns:
            break
    return scene, list(chosen.items()), claims


def chat_corpus(rng: random.Random, n: int) -> list[str]:
    """The template, prompts and answers of the mixture, for the chat SentencePiece model."""
    from model_zoo.internvl_chat.conversation import TEMPLATES

    texts = [TEMPLATES["vicuna_v1"].render("")]
    for _ in range(n):
        texts += [text for turn in conversation(rng)[1] for text in turn]
    return texts


def _chat_state(net) -> dict[str, torch.Tensor]:
    """Language model and projector tensors under the LLaVA checkpoint names."""
    state = {}
    for name, tensor in net.state_dict().items():
        if name.startswith("mm_projector."):
            state["model." + name] = tensor.detach().clone()
        elif name.startswith("language_model.") and "rotary_emb" not in name:
            state[name.removeprefix("language_model.")] = tensor.detach().clone()
    return state


def conversation_ids(tokenizer, template, turns: list[tuple[str, str]]) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of a multi-turn conversation as LLaVA's vicuna_v1 renders it (the image in the first user
    turn, each answer closed by ``</s>``) and the [start, end) span of every answer, EOS included."""
    user, assistant = template.roles
    ids, spans = [], []
    for number, (question, answer) in enumerate(turns):
        if number == 0:
            ids += tokenizer.tokenize_with_image(template.render(question))
        else:
            ids += tokenizer.encode(f"{user}: {question}{template.sep}{assistant}:")[1:]
        reply = tokenizer.encode(answer)[1:] + [tokenizer.eos_id]
        spans.append((len(ids), len(ids) + len(reply)))
        ids += reply
    return ids, spans


#: what the cell-reading loss can ask of each image token: its cell's thing's shape or texture (one
#: class more for an empty cell), or the token's own place -- its cell's column ("side") and row ("half")
CELL_ATTRIBUTES = {"shape": SHAPES, "texture": TEXTURES, "side": ("left", "right"), "half": ("top", "bottom")}
PLACE_ATTRIBUTES = ("side", "half")


def cell_targets(scenes: list, grid: int, attributes: tuple[str, ...] = ("shape", "texture")) -> torch.Tensor:
    """Per image token (row-major ``grid`` x ``grid`` patches), the class of each of ``attributes``
    (``CELL_ATTRIBUTES``) in its cell of the scene's 2x2 grid: [B, grid * grid, len(attributes)]."""
    row, col = torch.div(torch.arange(grid * grid), grid, rounding_mode="floor"), torch.arange(grid * grid) % grid
    cell = [CELLS.index((int(c), int(r))) for c, r in zip(col * 2 // grid, row * 2 // grid)]
    targets = torch.empty(len(scenes), grid * grid, len(attributes), dtype=torch.long)
    for b, scene in enumerate(scenes):
        things = {t.cell: t for t in scene.things}
        for token, here in enumerate(cell):
            thing = things.get(here)
            for a, name in enumerate(attributes):
                words = CELL_ATTRIBUTES[name]
                if name in PLACE_ATTRIBUTES:
                    targets[b, token, a] = CELLS[here][PLACE_ATTRIBUTES.index(name)]
                else:
                    targets[b, token, a] = words.index(getattr(thing, name)) if thing else len(words)
    return targets


class ClaimReader(torch.nn.Module):
    """Training only (stages 4 and 5): two linear heads on the LLaMA's hidden states at the "?" that ends
    a yes/no claim and at the position that predicts its answer: after layer ``VALUE_LAYER``, the word
    the image shows for what the claim is about (the truth of ``_claim_pair``); after ``MATCH_LAYER``,
    whether the claim holds.

    After stage 3 the model answered the claims of seven MME subtasks (colour, side, half, border,
    texture, digit, foreign colour word) with equal yes and no logits, although it names most of
    those attributes when asked outright: a yes/no answer alone never taught it to compare the claimed
    word with the image. Supervising the two halves of the comparison part way up the stack does:
    at the "?" alone it fixed four of the seven in one run and none in two variants of it; with the
    answer's position too, and the tower trained to keep each token's place, all seven reached 120
    of 200 after stage 5. Discarded after training, like ``CellReader``.
    """

    VALUE_LAYER, MATCH_LAYER = 2, 3

    def __init__(self, hidden_size: int, vocab_size: int) -> None:
        super().__init__()
        self.value = torch.nn.Linear(hidden_size, vocab_size)
        self.match = torch.nn.Linear(hidden_size, 1)

    def forward(self, hidden_states: tuple[torch.Tensor, ...], rows: torch.Tensor, positions: torch.Tensor,
                truths: torch.Tensor, holds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(value loss, match loss); ``truths`` is -100 where a claim has no one-word truth."""
        value = self.value(hidden_states[self.VALUE_LAYER][rows, positions])
        match = self.match(hidden_states[self.MATCH_LAYER][rows, positions]).flatten()
        return (F.cross_entropy(value, truths, ignore_index=-100),
                F.binary_cross_entropy_with_logits(match, holds))


class CellReader(torch.nn.Module):
    """Training only: a linear head classifying each projected image token's cell contents and, from
    stage 4, its place (``cell_targets``).

    A from-scratch LLaMA this small reads colours off the image tokens within a few hundred steps but
    named no shape better than chance after a thousand (shapes are there: a linear probe on the frozen
    tower's mean token names 96%). This loss makes the projector expose every cell's shape and texture;
    with it, shape naming reached 98% in 2,000 steps. The side and half claims stayed at 50/50 until the
    tokens were asked their place as well. The head is discarded after training.
    """

    def __init__(self, hidden_size: int, attributes: tuple[str, ...]) -> None:
        super().__init__()
        self.sizes = [len(CELL_ATTRIBUTES[name]) + (name not in PLACE_ATTRIBUTES) for name in attributes]
        self.head = torch.nn.Linear(hidden_size, sum(self.sizes))

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.head(tokens).flatten(0, 1).split(self.sizes, dim=-1)
        return sum(F.cross_entropy(part, targets[..., a].flatten()) for a, part in enumerate(logits))


def _chat_steps(net, tokenizer, rng: random.Random, stage: ChatStage, batch: int, label: str = "chat") -> list:
    """``stage.steps`` AdamW steps on conversations of ``stage.mixture``, the tower frozen unless
    ``stage.tower_lr`` (as in LLaVA-1.5's recipe; it is the trained contrastive InternViT). The loss is each
    answer's token cross-entropy (EOS included), predicted from the position before it, averaged per answer
    so short and long answers weigh the same; plus, weighted by ``stage.cell_weight``, a training-only linear
    head reading each projected image token's cell (``CellReader``): a from-scratch LLaMA this small learns
    colours from the image tokens within a few hundred steps but shapes only after thousands, and the head
    makes the projector expose them; and, weighted by ``stage.claim_weight`` (when above 0), the
    ``ClaimReader`` losses at each claim's "?" and answer position. The heads are discarded."""
    from model_zoo.internvl_chat.conversation import get_template
    from model_zoo.internvl_chat.preprocess import ChatImageTransform, ImageSettings

    template = get_template("vicuna_v1")
    transform = ChatImageTransform(ImageSettings(crop_size=CHAT_VISION.image_size,
                                                 shortest_edge=CHAT_VISION.image_size, origin="training"))
    net.train().requires_grad_(True)
    net.vision_tower.requires_grad_(False)
    grid = CHAT_VISION.image_size // CHAT_VISION.patch_size
    reader = CellReader(net.language_model.config.hidden_size, stage.cell_attributes)
    claim_reader = ClaimReader(net.language_model.config.hidden_size, tokenizer.vocab_size) if stage.claim_weight else None
    question_mark = tokenizer.encode("a?")[-1]
    trained = [p for p in net.parameters() if p.requires_grad] + list(reader.parameters())
    trained += list(claim_reader.parameters()) if claim_reader else []
    groups = [{"params": trained, "scale": 1.0}]
    if stage.tower_lr:
        net.vision_tower.requires_grad_(True)
        groups.append({"params": list(net.vision_tower.parameters()), "scale": stage.tower_lr})
        trained = trained + groups[-1]["params"]
    optimizer = torch.optim.AdamW(groups, lr=stage.peak_lr, weight_decay=0.05)
    curve, started = [], time.perf_counter()
    for step in range(stage.steps):
        for group in optimizer.param_groups:
            group["lr"] = _schedule(step, stage.steps, stage.peak_lr, stage.warmup) * group["scale"]
        examples = [conversation(rng, mixture=stage.mixture) for _ in range(batch)]
        pixels = torch.stack([transform(render(scene, rng.choice((64, 96, 128)))) for scene, _, _ in examples])
        encoded = [conversation_ids(tokenizer, template, turns) for _, turns, _ in examples]
        image_tokens = net.image_tokens(pixels)
        rows = net.splice([ids for ids, _ in encoded], image_tokens, range(batch))
        length = max(len(r) for r in rows)
        inputs = torch.stack([F.pad(r, (0, 0, 0, length - len(r))) for r in rows])
        mask = torch.stack([(torch.arange(length) < len(r)).long() for r in rows])
        output = net.language_model.model(inputs_embeds=inputs, attention_mask=mask,
                                          output_hidden_states=claim_reader is not None)
        hidden = output.last_hidden_state
        rows_at, positions, targets, weights = [], [], [], []
        claim_rows, claim_positions, truths, holds = [], [], [], []
        for i, (row, (ids, spans), (_, turns, claims)) in enumerate(zip(rows, encoded, examples)):
            offset = len(row) - len(ids)  # the spans index the ids; the image tokens replaced one of them
            asked_from = 0
            for (start, end), (question, answer) in zip(spans, turns):
                rows_at += [i] * (end - start)
                positions += range(offset + start - 1, offset + end - 1)
                targets += ids[start:end]
                weights += [1.0 / (end - start)] * (end - start)
                if claim_reader and question in claims:
                    mark = next(k for k in range(asked_from, start) if ids[k] == question_mark)
                    at = [offset + mark, offset + start - 1]  # the "?", and where the answer is predicted
                    claim_rows += [i] * len(at)
                    claim_positions += at
                    truth = tokenizer.encode(claims[question])[-1] if claims[question] else -100  # "5": "▁", "5"
                    truths += [truth] * len(at)
                    holds += [float(answer == "Yes")] * len(at)
                asked_from = end
        logits = net.language_model.lm_head(hidden[torch.tensor(rows_at), torch.tensor(positions)])
        per_token = F.cross_entropy(logits, torch.tensor(targets), reduction="none")
        weights = torch.tensor(weights)
        answers = (per_token * weights).sum() / weights.sum()
        cell = reader(image_tokens, cell_targets([scene for scene, _, _ in examples], grid, stage.cell_attributes))
        loss = answers + stage.cell_weight * cell
        if claim_reader and claim_rows:
            value, match = claim_reader(output.hidden_states, torch.tensor(claim_rows), torch.tensor(claim_positions),
                                        torch.tensor(truths), torch.tensor(holds))
            loss = loss + stage.claim_weight * value + stage.claim_weight * match
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        if step % 50 == 0 or step == stage.steps - 1:
            claim = [round(value.item(), 4), round(match.item(), 4)] if claim_reader and claim_rows else []
            curve.append([step, round(answers.item(), 4), round(cell.item(), 4), *claim])
            _log(f"{label} step {step}/{stage.steps} answer loss {answers.item():.4f} cell loss {cell.item():.4f}"
                 + (f" claim value/match loss {claim[0]:.4f}/{claim[1]:.4f}" if claim else "")
                 + f" ({time.perf_counter() - started:.0f} s)")
    return curve


def contrastive_tower(folder: Path) -> dict[str, torch.Tensor]:
    """The trained InternViT of the contrastive demo checkpoint (``vision_model.*``) under tower-file names."""
    from model_zoo.internvl.checkpoint import iter_tensors, weight_files

    return {name.removeprefix("vision_model."): tensor for name, tensor in iter_tensors(weight_files(folder))
            if name.startswith("vision_model.")}


def train_chat(out: Path, tower_out: Path, stage: ChatStage, batch: int, contrastive: Path = CONTRASTIVE_DIR) -> None:
    """The SentencePiece model, then projector and LLaMA (from scratch) on conversations about the world,
    over the frozen InternViT of the contrastive demo; the tower folder holds that InternViT (its three
    extra, unused blocks random, as ``mm_vision_select_layer`` -4 never runs them)."""
    from model_zoo.internvl.tiny import random_tensors, train_tokenizer, vision_shapes
    from model_zoo.internvl_chat import tiny
    from model_zoo.internvl_chat.config import load_chat_config
    from model_zoo.internvl_chat.network import InternVLChatNet
    from model_zoo.internvl_chat.tokenizer import LlamaTokenizer

    torch.manual_seed(SEED)
    rng = random.Random(SEED + TRAIN_SEED_OFFSET + 1)
    out.mkdir(parents=True, exist_ok=True)
    model_file = train_tokenizer(out / "tokenizer.model", vocab_size=900, corpus=chat_corpus(rng, 1000),
                                 remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
                                 add_dummy_prefix=True, hard_vocab_limit=False)
    tiny.write_tokenizer_files(out, model_file)
    tokenizer = LlamaTokenizer(out)
    language = replace(CHAT_LANGUAGE, vocab_size=tokenizer.vocab_size)
    config_data = tiny.chat_config_dict(language, CHAT_VISION.hidden_size, tower_out.name)
    config_data["_name_or_path"] = out.name
    (out / "config.json").write_text(json.dumps(config_data, indent=2) + "\n", encoding="utf-8")
    (out / "preprocessor_config.json").write_text(
        json.dumps(tiny.preprocessor_config_dict(CHAT_VISION.image_size), indent=2) + "\n", encoding="utf-8")
    net = InternVLChatNet(load_chat_config(out), CHAT_VISION, "sdpa")
    positions = (CHAT_VISION.image_size // CHAT_VISION.patch_size) ** 2 + 1
    tower = random_tensors(vision_shapes(CHAT_VISION, positions), seed=SEED + 1) | contrastive_tower(contrastive)
    net.vision_tower.load_state_dict({k: v for k, v in tower.items() if k in net.vision_tower.state_dict()})
    started = time.perf_counter()
    curve = _chat_steps(net, tokenizer, rng, stage, batch)
    wall = time.perf_counter() - started
    tiny.write_tower(tower_out, CHAT_VISION, state=tower, weights_format="safetensors", dtype=torch.bfloat16)
    tiny.write_chat(out, tower_out.name, language, CHAT_VISION, seed=SEED, state=_chat_state(net),
                    tokenizer=model_file, weights_format="safetensors", dtype=torch.bfloat16)
    (out / "config.json").write_text(json.dumps(config_data, indent=2) + "\n", encoding="utf-8")
    _write_log(tower_out, "chat tower (the contrastive demo's InternViT, frozen)", stage.steps, batch, [], wall)
    _write_log(out, "chat", stage.steps, batch, curve, wall)


def tune_chat(out: Path, stage: int, batch: int) -> None:
    """Stage ``stage`` (2 to 5), from the folders the stage before wrote (bfloat16 weights, loaded by the
    real loader; a fresh optimizer and heads): ``TUNE_STAGES[stage - 2]``. Rewrites the chat folder, and
    the tower folder when the stage trains the tower. The earlier stages' logs are kept inside this stage's."""
    from model_zoo.internvl_chat import tiny
    from model_zoo.internvl_chat.adapter import load_internvl_chat
    from model_zoo.internvl_chat.config import load_chat_config

    torch.manual_seed(SEED + stage)
    rng = random.Random(SEED + TRAIN_SEED_OFFSET + stage)
    model = load_internvl_chat(str(out), None, "cpu", torch.float32)
    config_data = json.loads((out / "config.json").read_text(encoding="utf-8"))
    started = time.perf_counter()
    tune = TUNE_STAGES[stage - 2]
    curve = _chat_steps(model.net, model.tokenizer, rng, tune, batch, f"chat-stage{stage}")
    wall = time.perf_counter() - started
    if tune.tower_lr:
        tower = out.parent / config_data["mm_vision_tower"]
        _rewrite_tower(tower, model.net.vision_tower, stage, tune.steps, batch, wall)
    tiny.write_chat(out, config_data["mm_vision_tower"], load_chat_config(out).language, CHAT_VISION, seed=SEED,
                    state=_chat_state(model.net), tokenizer=out / "tokenizer.model", weights_format="safetensors",
                    dtype=torch.bfloat16)
    (out / "config.json").write_text(json.dumps(config_data, indent=2) + "\n", encoding="utf-8")
    _write_log(out, f"chat (stage {stage})", tune.steps, batch, curve, wall, nest_earlier=True)


def _rewrite_tower(folder: Path, tower, stage: int, steps: int, batch: int, wall: float) -> None:
    """The tower folder with the blocks ``tower`` runs replaced by its trained weights (the unused last
    blocks as they were), bfloat16 as before; its log keeps the one before."""
    from model_zoo.internvl.checkpoint import iter_tensors, weight_files
    from model_zoo.internvl_chat import tiny

    state = dict(iter_tensors(weight_files(folder)))
    trained = {name: tensor.detach().clone() for name, tensor in tower.state_dict().items()}
    assert set(trained) <= set(state), set(trained) - set(state)
    for stale in weight_files(folder):
        stale.unlink()
    tiny.write_tower(folder, CHAT_VISION, state=state | trained, weights_format="safetensors", dtype=torch.bfloat16)
    _write_log(folder, f"chat tower (trained in stage {stage})", steps, batch, [], wall, nest_earlier=True)


def _write_log(out: Path, what: str, steps: int, batch: int, curve: list, wall: float,
               nest_earlier: bool = False) -> None:
    """``training_log.json``: the settings, loss curve ([step, answer loss, cell loss] for the chat model;
    stages 4 and 5 add the claim value and match losses), wall time, with ``nest_earlier`` the log the
    folder held (the stage before; its sha256 dropped, the files changed), and the sha256 of every file
    the folder holds."""
    log_file = out / "training_log.json"
    earlier = json.loads(log_file.read_text(encoding="utf-8")) if nest_earlier else None
    earlier = {k: v for k, v in earlier.items() if k != "sha256"} if earlier else None
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "training_log.json")
    log = {"model": what, "seed": SEED, "steps": steps, "batch": batch, "threads": torch.get_num_threads(),
           "torch": torch.__version__, "wall_time_s": round(wall, 1), "loss_curve": curve,
           **({"earlier_stage": earlier} if earlier else {}),
           "sha256": {str(p.relative_to(out)): _sha256(p) for p in files}}
    log_file.write_text(json.dumps(log, indent=1) + "\n", encoding="utf-8")
    _log(f"wrote {out} in {wall:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=["contrastive", "chat"])
    parser.add_argument("--stages", default="1,2,3,4,5",
                        help="chat: the stages to run (a later stage starts from the folder the one before wrote)")
    parser.add_argument("--steps", type=int, default=None, help="contrastive: steps; chat: stage 1's steps")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="folder (chat: the chat folder; the tower goes beside it)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model == "contrastive":
        train_contrastive(args.out or CONTRASTIVE_DIR, args.steps or 3000, args.batch or 96)
        return
    out, batch = args.out or CHAT_DIR, args.batch or 32
    for stage in sorted(int(s) for s in args.stages.split(",")):
        if stage == 1:
            first = replace(FIRST_STAGE, steps=args.steps) if args.steps else FIRST_STAGE
            train_chat(out, out.parent / TOWER_DIR.name, first, batch)
        else:
            tune_chat(out, stage, batch)


if __name__ == "__main__":
    main()
