"""InternVL-Chat 1.0: parity with the official LLaVA code, the released layout, preprocessing, splicing,
batched greedy decoding, precision and bad input.

Reference outputs in ``tests/data/internvl_chat_tiny/reference.*`` come from the official code
(``OpenGVLab/InternVL`` ``internvl_chat_llava/``, transformers 4.37.2) run on the committed tiny checkpoint;
``tokenizer_cases.json`` from its slow ``LlamaTokenizer`` (see that folder's README.md). Measured (float32):
pixels bit-equal; image tokens 0 (math) / 1.1e-5 of values up to 64 (sdpa); first-token logits <= 2.1e-6;
greedy ids equal on all 15 cases and on the 15 cases of the EOS-prone variant. fp16: logits <= 0.0045,
ids equal (sdpa). bf16 vs fp32 logits here: 0.03 (``BF16_LOGIT_TOL`` allows 0.25); fp16 vs fp32 0.004.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import model_zoo
from internvl_bench.errors import BenchError
from model_zoo.chat import IMAGE_TOKEN_INDEX
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl_chat import loader
from model_zoo.internvl_chat.tokenizer import LlamaTokenizer
from tests.fixtures.chat import COMMITTED_CHAT, DATA, IMAGES, copy_pair, edit_json

PARITY_TOL = 1e-5
FP16_LOGIT_TOL = 0.01
BF16_LOGIT_TOL = 0.25
NAME = "internvl-chat-vicuna-7b"


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict]:
    return load_file(str(DATA / "reference.safetensors")), json.loads((DATA / "reference.json").read_text())


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return json.loads((DATA / "questions.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [Image.open(DATA / name).convert("RGB") for name in IMAGES]


def load(precision: str = "fp32", checkpoint: Path = COMMITTED_CHAT, **options):
    return model_zoo.load_model(NAME, checkpoint=str(checkpoint), precision=precision, **options)


@pytest.fixture(scope="module")
def chat():
    return load()


@pytest.fixture(scope="module")
def chat_math():
    return load(attention="math")


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# -- parity with the official code ---------------------------------------------------------------
def test_pixels_bit_equal_to_official(chat, images, reference) -> None:
    _, meta = reference
    pixels = chat.preprocess(images)
    assert pixels.shape == (5, 3, 336, 336)
    digests = [hashlib.sha256(p.contiguous().numpy().tobytes()).hexdigest() for p in pixels]
    assert digests == meta["pixels_sha256"]


@pytest.mark.parametrize("backend,tol", [("math", 0.0), ("sdpa", 1e-4)])
def test_image_tokens_match_official(backend, tol, chat, chat_math, images, reference) -> None:
    tensors, _ = reference
    model = chat_math if backend == "math" else chat
    for index in (0, 3):
        tokens = model.encode_image(model.preprocess([images[index]]))[0]
        assert tokens.shape == (576, 64)
        assert maxdiff(tokens, tensors[f"image_tokens_{index}"]) <= tol


def test_prompts_ids_logits_and_greedy_answers_match_official(chat, images, questions, reference) -> None:
    tensors, meta = reference
    pixels = chat.preprocess(images)
    for case in meta["cases"]:
        prompt = chat.build_prompt(questions[case["question"]])
        assert prompt == case["prompt"]
        assert chat.tokenize_prompt(prompt) == case["input_ids"]
        px = pixels[case["image"]:case["image"] + 1]
        logits = chat.next_token_logits(px, [prompt])[0]
        assert maxdiff(logits, tensors[f"logits_fp32_case_{case['image']}_{case['question']}"]) <= PARITY_TOL
        (answer,) = chat.generate(px, [prompt], max_new_tokens=24)
        assert answer.token_ids == case["output_ids"]
        assert answer.text == case["answer"]


def test_eos_stops_like_the_official_and_batches_equal_batch_one(images, questions, reference) -> None:
    _, meta = reference
    model = load()
    with torch.no_grad():  # the EOS-prone variant of the reference run: eos row = 1.05 x a frequent token's row
        head = model.net.language_model.lm_head.weight
        head[2] = head[meta["eos_tweak_token"]] * 1.05
    pixels = model.preprocess(images)
    cases = meta["cases"]
    prompts = [model.build_prompt(questions[c["question"]]) for c in cases]
    rows = [c["image"] for c in cases]
    alone = [model.generate(pixels[r:r + 1], [p], max_new_tokens=24)[0] for r, p in zip(rows, prompts)]
    batched = model.generate(pixels, prompts, max_new_tokens=24, image_rows=rows)
    for a, b, expected in zip(alone, batched, meta["eos_cases"]):
        assert a.token_ids == expected["output_ids"] and a.text == expected["answer"]
        assert b.token_ids == a.token_ids and b.text == a.text
    stopped = [a for a in alone if a.finish_reason == "eos"]
    assert 3 <= len(stopped) < len(alone), "the variant must stop some rows early and not others"
    for answer in stopped:
        assert answer.token_ids[-1] == 2 and 2 not in answer.token_ids[:-1] and len(answer.token_ids) < 24
    assert all(a.finish_reason == "length" and len(a.token_ids) == 24 for a in alone if a not in stopped)
    held = model.generate(pixels, prompts, max_new_tokens=24, image_rows=rows, min_new_tokens=12)
    assert all(2 not in h.token_ids[:12] for h in held)
    assert any(h.token_ids != a.token_ids for h, a in zip(held, alone)), "some rows stopped before 12 tokens"


def test_fp16_matches_official_fp16(images, questions, reference) -> None:
    tensors, meta = reference
    model = load("fp16")
    pixels = model.preprocess(images)
    for case, expected in zip(meta["cases"], meta["fp16_cases"]):
        prompt = model.build_prompt(questions[case["question"]])
        px = pixels[case["image"]:case["image"] + 1]
        logits = model.next_token_logits(px, [prompt])[0]
        assert maxdiff(logits, tensors[f"logits_fp16_case_{case['image']}_{case['question']}"]) <= FP16_LOGIT_TOL
        assert model.generate(px, [prompt], max_new_tokens=24)[0].token_ids == expected["output_ids"]


def test_tokenizer_matches_official_slow_tokenizer(tmp_path: Path) -> None:
    cases = json.loads((DATA / "tokenizer_cases.json").read_text(encoding="utf-8"))
    for variant in ("released", "legacy", "cleanup"):
        folder = tmp_path / variant
        folder.mkdir()
        for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(COMMITTED_CHAT / name, folder / name)
        edit_json(folder / "tokenizer_config.json", **cases[variant]["config"])
        tokenizer = LlamaTokenizer(folder)
        expected = cases[variant]
        assert [tokenizer.encode(t) for t in cases["texts"]] == expected["encode"], variant
        assert [tokenizer.tokenize_with_image(t) for t in cases["texts"]] == expected["with_image"], variant
        assert [tokenizer.decode(ids) for ids in cases["id_lists"]] == expected["decode"], variant
        assert [tokenizer.decode(ids, skip_special_tokens=False) for ids in cases["id_lists"]] == \
            expected["decode_keep_special"], variant


# -- the released layout ---------------------------------------------------------------------------
def test_released_layout_tower_from_its_folder_not_the_copy(chat) -> None:
    provenance = chat.provenance()
    assert provenance["vision_tower"]["found_by"] == "folder beside the chat checkpoint"
    assert provenance["ignored_tower_copy_tensors"] == 82  # 4 embedding tensors + 6 blocks x 13
    assert provenance["weights_format"] == "bin"
    assert provenance["generation_config_ignored"] == {"temperature": 0.9, "top_p": 0.6, "max_length": 4096}
    tower_file = next((DATA / "InternViT-6B-224px-tiny").glob("pytorch_model-00001-*.bin"))
    stored = torch.load(tower_file, weights_only=True)["embeddings.patch_embedding.weight"]
    copy = {}
    for shard in COMMITTED_CHAT.glob("pytorch_model-*.bin"):
        copy.update(torch.load(shard, weights_only=True))
    loaded = chat.net.vision_tower.embeddings.patch_embedding.weight
    assert torch.equal(loaded, stored.float())
    assert not torch.equal(loaded, copy["model.vision_tower.vision_tower.embeddings.patch_embedding.weight"].float())


def test_only_the_blocks_up_to_the_selected_layer_are_built(chat) -> None:
    assert len(chat.net.vision_tower.encoder.layers) == 3  # 6 blocks, hidden_states[-4] = after block 3


def test_tower_resolution_rules(tmp_path: Path, monkeypatch) -> None:
    chat, tower = copy_pair(tmp_path / "pair")
    moved = tmp_path / "elsewhere" / "my-tower"
    moved.parent.mkdir()
    shutil.move(str(tower), moved)
    with pytest.raises(BenchError, match="is neither a folder nor a released InternViT; pass --vision-tower"):
        load(checkpoint=chat)
    assert load(checkpoint=chat, vision_tower=str(moved)).provenance()["vision_tower"]["found_by"] == "--vision-tower"
    edit_json(chat / "config.json", mm_vision_tower=str(moved))
    assert load(checkpoint=chat).provenance()["vision_tower"]["found_by"] == "mm_vision_tower path"
    requested = []

    def offline(repo_id, revision=None, allow_patterns=None):
        requested.append((repo_id, revision))
        raise OSError("offline")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    edit_json(chat / "config.json", mm_vision_tower="pretrained/InternViT-6B-224px")
    with pytest.raises(BenchError, match="cannot download OpenGVLab/InternViT-6B-224px@084bfb6"):
        load(checkpoint=chat)
    assert requested == [("OpenGVLab/InternViT-6B-224px", "084bfb607eb04f373bf0349c49eb6bc3ba094919")]


def test_safetensors_chat_weights_load_too(tmp_path: Path, chat, images) -> None:
    from safetensors.torch import save_file

    folder, _ = copy_pair(tmp_path / "pair")
    state = {}
    for shard in sorted(folder.glob("pytorch_model-*.bin")):
        state.update(torch.load(shard, weights_only=True))
        shard.unlink()
    (folder / "pytorch_model.bin.index.json").unlink()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    other = load(checkpoint=folder)
    pixels = chat.preprocess(images[:1])
    prompt = chat.build_prompt("Is it red?")
    assert torch.equal(other.next_token_logits(pixels, [prompt]), chat.next_token_logits(pixels, [prompt]))
    assert other.provenance()["weights_format"] == "safetensors"


# -- preprocessing and splicing ---------------------------------------------------------------------
def test_padding_fills_with_the_mean_colour(chat) -> None:
    wide = Image.new("RGB", (120, 40), (255, 0, 0))
    pixels = chat.preprocess([wide])[0]
    fill = torch.tensor([123, 116, 103]) / 255.0
    expected = (fill - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(pixels[:, 5, 168], expected, atol=1e-6)  # top band: padding
    red = (torch.tensor([1.0, 0.0, 0.0]) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(pixels[:, 168, 168], red, atol=1e-6)  # centre: the image


def test_image_placeholder_is_spliced_with_576_tokens(chat, images) -> None:
    prompt = chat.build_prompt("What is it?")
    ids = chat.tokenize_prompt(prompt)
    assert ids.count(IMAGE_TOKEN_INDEX) == 1 and ids[0] == 1
    cut = ids.index(IMAGE_TOKEN_INDEX)
    tokenizer = chat.tokenizer
    assert tokenizer.sp.IdToPiece(ids[cut - 1]) == "\u2581" and tokenizer.sp.IdToPiece(ids[cut + 1]) == "\u2581"
    assert tokenizer.sp.IdToPiece(ids[cut + 2]) == "<0x0A>"
    tokens = chat.encode_image(chat.preprocess(images[:1]))
    (row,) = chat.net.splice([ids], tokens, [0])
    assert row.shape[0] == len(ids) - 1 + 576
    assert torch.equal(row[cut:cut + 576], tokens[0])
    embed = chat.net.language_model.get_input_embeddings().weight
    assert torch.equal(row[cut + 576], embed[ids[cut + 1]]) and torch.equal(row[cut - 1], embed[ids[cut - 1]])


def test_a_prompt_without_image_is_refused(chat, images) -> None:
    with pytest.raises(BenchError, match="exactly one <image>"):
        chat.generate(chat.preprocess(images[:1]), ["no image here"], max_new_tokens=2)


# -- batching ---------------------------------------------------------------------------------------
def test_mixed_length_batches_equal_batch_one_in_fp32(chat, images) -> None:
    pixels = chat.preprocess(images)
    questions = ["Red?", "What colour is the shape in the middle of this picture, and is it round?",
                 "Describe the image in detail, please, with every shape and colour you see.", "2 + 2 =", "Yes or no?",
                 "Provide a one-sentence caption for the provided image."]
    prompts = [chat.build_prompt(q) for q in questions]
    rows = [0, 0, 1, 2, 3, 4]
    alone = [chat.generate(pixels[r:r + 1], [p], max_new_tokens=10)[0].token_ids for r, p in zip(rows, prompts)]
    for order in ([0, 1, 2, 3, 4, 5], [5, 3, 1, 0, 2, 4], [2, 0]):
        got = chat.generate(pixels, [prompts[i] for i in order], max_new_tokens=10, image_rows=[rows[i] for i in order])
        assert [g.token_ids for g in got] == [alone[i] for i in order]
    limits = chat.generate(pixels, prompts[:3], max_new_tokens=[1, 4, 0], image_rows=rows[:3])
    assert [len(g.token_ids) for g in limits] == [1, 4, 0]
    assert limits[1].token_ids == alone[1][:4]


def test_bf16_is_really_used(chat, images) -> None:
    model = load("bf16")
    floats = {p.dtype for p in model.net.parameters()}
    assert floats == {torch.bfloat16}
    assert model.net.language_model.model.rotary_emb.inv_freq.dtype == torch.float32
    pixels = model.preprocess(images[:2])
    assert model.encode_image(pixels).dtype == torch.bfloat16
    prompts = [model.build_prompt("Is it red?")] * 2
    low, high = model.next_token_logits(pixels, prompts), chat.next_token_logits(pixels, prompts)
    assert 0 < maxdiff(low, high) < BF16_LOGIT_TOL
    assert model.provenance()["precision"] == "bf16"


# -- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("change,message", [
    ({"mm_projector_type": "qformer"}, "mm_projector_type 'qformer' is not supported"),
    ({"mm_vision_select_layer": -9}, "mm_vision_select_layer -9 is outside the tower's 7 hidden states"),
    ({"mm_vision_select_feature": "cls"}, "mm_vision_select_feature 'cls' is not supported"),
    ({"image_aspect_ratio": "anyres"}, "image_aspect_ratio 'anyres' is not supported"),
    ({"model_type": "llama"}, "model_type is 'llama', expected 'llava'"),
    ({"mm_hidden_size": 48}, "tower hidden_size 32 but .* has mm_hidden_size 48"),
    ({"intermediate_size": 96}, "checkpoint key 'model.layers.0.mlp.gate_proj.weight' has shape \\[128, 64\\] but"),
])
def test_config_problems_are_one_line_errors(tmp_path: Path, change: dict, message: str) -> None:
    chat, _ = copy_pair(tmp_path / "pair")
    edit_json(chat / "config.json", **change)
    with pytest.raises(BenchError, match=message):
        load(checkpoint=chat)


def test_missing_shard_and_missing_key(tmp_path: Path) -> None:
    chat, tower = copy_pair(tmp_path / "pair")
    (chat / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(BenchError, match="pytorch_model-00002-of-00002.bin: shard named in pytorch_model.bin.index.json"):
        load(checkpoint=chat)
    chat, tower = copy_pair(tmp_path / "pair2")
    shard = tower / "pytorch_model-00001-of-00002.bin"
    state = torch.load(shard, weights_only=True)
    del state["embeddings.class_embedding"]
    torch.save(state, shard)
    with pytest.raises(BenchError, match="InternViT-6B-224px-tiny: checkpoint lacks key 'embeddings.class_embedding'"):
        load(checkpoint=chat)


def test_pickles_are_read_weights_only(tmp_path: Path) -> None:
    chat, _ = copy_pair(tmp_path / "pair")

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model.norm.weight": Payload()}, chat / "pytorch_model-00002-of-00002.bin")
    with pytest.raises(BenchError, match="weights-only"):
        load(checkpoint=chat)


def test_memory_estimate_refuses_a_device_too_small(monkeypatch) -> None:
    monkeypatch.setattr("model_zoo.memory.available_bytes", lambda device: 1000)
    with pytest.raises(BenchError, match=r"needs about 0.0 GiB .* but cpu has 0.0 GiB free"):
        load()


def test_full_size_estimate_is_about_25_gb() -> None:
    from model_zoo.internvl_chat_models import ARCHITECTURES

    config, vision = ARCHITECTURES["internvl-chat-vicuna-7b"]
    params = (config.language.parameter_count() + loader.tower_parameter_count(vision, config.layers_to_run(vision))
              + loader.projector_parameter_count(config))
    assert 6.7e9 < config.language.parameter_count() < 6.8e9
    assert 24e9 < 2 * params < 26e9  # bf16 bytes: 7B + the 45 blocks of the 6B tower that run


def test_hub_checkpoints_are_pinned() -> None:
    from model_zoo import internvl_chat_models as registered

    for ref in (registered.VICUNA_7B, registered.VICUNA_13B, registered.VICUNA_13B_448PX, *loader.KNOWN_TOWERS.values()):
        assert len(ref.revision) == 40 and int(ref.revision, 16) >= 0
    assert ckpt.parse_hub_spec(str(registered.VICUNA_7B)) == registered.VICUNA_7B


def test_input_size_comes_from_the_chat_folder_or_the_official_rule(tmp_path: Path, images) -> None:
    chat, tower = copy_pair(tmp_path / "pair")
    edit_json(chat / "config.json", mm_vision_tower="InternViT-6B-448px-tiny")
    shutil.move(str(tower), tower.parent / "InternViT-6B-448px-tiny")
    model = load(checkpoint=chat)  # "448" in the tower name: 448 px, the 16x16 table re-interpolated to 32x32
    assert model.image_size == 448 and model.preprocess(images[:1]).shape == (1, 3, 448, 448)
    assert model.encode_image(model.preprocess(images[:1])).shape == (1, 1024, 64)
    (chat / "preprocessor_config.json").write_text(json.dumps(
        {"crop_size": {"height": 224, "width": 224}, "size": {"shortest_edge": 224}, "image_mean": [0.5, 0.5, 0.5],
         "image_std": [0.5, 0.5, 0.5]}))
    model = load(checkpoint=chat)
    assert model.image_size == 224 and model.preprocess(images[:1]).shape == (1, 3, 224, 224)
    settings = model.provenance()["image_preprocessing"]
    assert settings["settings_from"].endswith("preprocessor_config.json") and settings["fill"] == [127, 127, 127]


def test_random_weights_build_for_timing(chat, images) -> None:
    from model_zoo.internvl_chat.adapter import build_random_chat

    model = build_random_chat(chat.config, chat.net.vision_config, COMMITTED_CHAT, seed=3)
    pixels = model.preprocess(images[:2])
    prompts = [model.build_prompt("Is it red?"), model.build_prompt("What colour is the shape in the image?")]
    alone = [model.generate(pixels[i:i + 1], [p], max_new_tokens=5)[0].token_ids for i, p in enumerate(prompts)]
    assert [g.token_ids for g in model.generate(pixels, prompts, max_new_tokens=5)] == alone
    assert model.provenance()["weights"] == "random(seed=3)"
