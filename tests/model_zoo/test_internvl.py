"""InternVL-C / InternVL-G: parity with the official code, loading, tokenizer, backends, precision.

Reference outputs in ``tests/data/internvl_tiny/reference.safetensors`` come from the official modeling
code run on the committed tiny checkpoint (see that folder's README.md). Measured max abs differences
(float32): ``math`` backend 0 for C image, G image, text, G query states, logits and the resized
position table / 24-px features; ``sdpa`` backend <= 2.4e-6 (logits), <= 1.9e-6 (query states), <= 1.1e-6
(text). The ``.pth`` path against the official ``internvl_c_pytorch``: <= 1.1e-6 (text), <= 2.2e-6 (logits).
bf16 vs fp32 on L2-normalised features: 0.008 (fp16: 0.0012); the test allows ``BF16_TOL``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import model_zoo
from internvl_bench.errors import BenchError
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl.adapter import InternVLModel, _load_pth
from model_zoo.internvl.config import TINY, InternVLConfig, load_config
from model_zoo.internvl.layers import flash_available
from model_zoo.internvl.tiny import official_shapes, random_state_dict, train_tokenizer, write_checkpoint
from model_zoo.internvl.vision import resize_position_embedding
from model_zoo.internvl_models import ARCHITECTURES, TINY_SEED, TINY_TOKENIZER

DATA = Path(__file__).resolve().parents[1] / "data" / "internvl_tiny"
CHECKPOINT = DATA / "checkpoint"
PARITY_TOL = 1e-5
#: documented bf16 tolerance: max abs difference of L2-normalised features vs fp32 (tiny model)
BF16_TOL = 0.03


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """The tiny model is all per-op overhead: one intra-op thread is ~10x faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / "reference.safetensors"))


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    return load_file(str(DATA / "inputs.safetensors"))


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return json.loads((DATA / "texts.json").read_text(encoding="utf-8"))


def _load(name: str, backend: str = "math", precision: str = "fp32", checkpoint: str | Path | None = CHECKPOINT):
    model = model_zoo.load_model(name, checkpoint=None if checkpoint is None else str(checkpoint), precision=precision)
    model.set_attention_backend(backend)
    return model


@pytest.fixture(scope="module")
def model_c() -> InternVLModel:
    return _load("internvl-c")


@pytest.fixture(scope="module")
def model_g() -> InternVLModel:
    return _load("internvl-g")


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# -- parity with the official implementation --------------------------------------------------------
@pytest.mark.parametrize("backend", ["math", "sdpa"])
def test_parity_with_official(backend, ref, inputs, texts):
    c, g = _load("internvl-c", backend), _load("internvl-g", backend)
    pixels = inputs["pixels_16"]
    ids = c.tokenize(texts)
    assert maxdiff(c.encode_image(pixels, normalize=False), ref["image_c"]) < PARITY_TOL
    assert maxdiff(g.encode_image(pixels, normalize=False), ref["image_g"]) < PARITY_TOL
    assert maxdiff(c.encode_text(texts, normalize=False), ref["text"]) < PARITY_TOL
    assert maxdiff(g.encode_text(texts, normalize=False), ref["text"]) < PARITY_TOL
    with torch.no_grad():
        assert maxdiff(g.net.query_states(g.net.vision_tokens(pixels)), ref["query_states"]) < PARITY_TOL
        logits_c = c.net.logits(c.net.image_features_c(pixels), c.net.text_features(ids))
        logits_g = g.net.logits(g.net.image_features_g(pixels), g.net.text_features(ids))
    assert maxdiff(logits_c, ref["logits_c"]) < PARITY_TOL * 10  # logits are scaled by exp(logit_scale) ~ 14
    assert maxdiff(logits_g, ref["logits_g"]) < PARITY_TOL * 10


def test_position_embedding_resize_matches_official(model_c, model_g, ref, inputs):
    # 16 px (4x4 grid) -> 24 px (6x6 grid): the 224 -> 336 resize at tiny scale
    pos = model_c.net.vision_model.embeddings.position_embedding
    assert maxdiff(resize_position_embedding(pos, 6), ref["pos_embed_24"]) < 1e-6
    # on-the-fly: 24-px pixels into the 16-px checkpoint
    assert maxdiff(model_c.encode_image(inputs["pixels_24"], normalize=False), ref["image_c_24"]) < PARITY_TOL
    assert maxdiff(model_g.encode_image(inputs["pixels_24"], normalize=False), ref["image_g_24"]) < PARITY_TOL


def test_force_image_size_checkpoint(tmp_path, ref, inputs):
    """A checkpoint written with force_image_size stores the resized table (like the 364-px ones)."""
    state = random_state_dict(TINY, TINY_SEED)
    state["vision_model.embeddings.position_embedding"] = ref["pos_embed_24"]
    config = replace(TINY, force_image_size=24)
    write_checkpoint(tmp_path, config, state, tokenizer=TINY_TOKENIZER)
    model = _load("internvl-c", checkpoint=tmp_path)
    assert model.image_size == 24 and model.image_transform("squash") is not None
    assert maxdiff(model.encode_image(inputs["pixels_24"], normalize=False), ref["image_c_24"]) < PARITY_TOL


# -- tokenizer --------------------------------------------------------------------------------------
def test_tokenizer_matches_official(model_c, ref, texts):
    ids = model_c.tokenize(texts)
    assert torch.equal(ids, ref["ids"])
    lengths = (ids > 0).sum(1)
    assert ids.shape[1] == 80 and (ids[:, 0] == 1).all()
    assert (ids[torch.arange(len(texts)), lengths - 1] == 2).all()  # EOS last, also after truncation
    assert lengths[-1] == 80  # the long text was truncated


def test_padding_never_changes_a_text_feature(model_c, texts):
    ids = model_c.tokenize(texts)
    full = model_c.encode_ids(ids, normalize=False)
    longest = int((ids > 0).sum(1).max())
    trimmed = model_c.encode_ids(ids[:, :longest], normalize=False)
    padded = model_c.encode_ids(torch.cat([ids, torch.zeros(len(texts), 7, dtype=torch.long)], 1), normalize=False)
    alone = torch.cat([model_c.encode_ids(ids[i: i + 1, : int((ids[i] > 0).sum())], normalize=False) for i in range(3)])
    assert maxdiff(full, trimmed) < 1e-5 and maxdiff(full, padded) < 1e-5 and maxdiff(full[:3], alone) < 1e-5


# -- backends and precision -------------------------------------------------------------------------
def test_backends_agree(inputs, texts):
    backends = ["math", "sdpa"] + (["flash"] if flash_available() else [])
    outs = {}
    for backend in backends:
        g = _load("internvl-g", backend)
        outs[backend] = (g.encode_image(inputs["pixels_16"]), g.encode_text(texts))
    for backend in backends[1:]:
        assert maxdiff(outs[backend][0], outs["math"][0]) < 1e-5
        assert maxdiff(outs[backend][1], outs["math"][1]) < 1e-5


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_within_tolerance(precision, model_g, inputs, texts):
    half = _load("internvl-g", "sdpa", precision)
    assert half.net.qllama.model.norm.weight.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    img, txt = half.encode_image(inputs["pixels_16"]), half.encode_text(texts)
    assert img.dtype == torch.float32 and torch.isfinite(img).all() and torch.isfinite(txt).all()
    assert maxdiff(img, model_g.encode_image(inputs["pixels_16"])) < BF16_TOL
    assert maxdiff(txt, model_g.encode_text(texts)) < BF16_TOL


def test_g_queries_depend_on_image(model_g, inputs):
    with torch.no_grad():
        states = model_g.net.query_states(model_g.net.vision_tokens(inputs["pixels_16"]))
    assert (states[0] - states[1]).abs().max() > 1e-3
    # and the G feature is a sum of two unit vectors
    norms = model_g.encode_image(inputs["pixels_16"], normalize=False).norm(dim=1)
    assert ((norms > 0) & (norms <= 2 + 1e-5)).all()


# -- the tie_word_embeddings pitfall ----------------------------------------------------------------
def test_tie_word_embeddings_pitfall(tmp_path, ref, texts):
    raw = json.loads((CHECKPOINT / "config.json").read_text())
    assert "tie_word_embeddings" not in raw  # like the real InternVL-14B-224px config: inherits true
    assert load_config(CHECKPOINT / "config.json").tie_word_embeddings is True
    default = model_zoo.load_model("internvl-c", checkpoint=str(CHECKPOINT))
    default.set_attention_backend("math")
    # official evaluation loading (torch_dtype=float16 -> low-memory path): embed_tokens kept
    assert maxdiff(default.encode_text(texts, normalize=False), ref["text"]) < PARITY_TOL
    assert maxdiff(ref["text"], ref["text_notie_eager"]) == 0.0
    # eager fp32 loading with the flag true: lm_head overwrites the shared table
    eager = ckpt_model(CHECKPOINT, tie_policy="eager")
    assert maxdiff(eager.encode_text(texts, normalize=False), ref["text_eager_tied"]) < PARITY_TOL
    assert maxdiff(ref["text_eager_tied"], ref["text"]) > 0.1
    # with tie_word_embeddings: false the eager path keeps the embedding too
    for item in CHECKPOINT.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({**raw, "tie_word_embeddings": False}))
    notie = ckpt_model(tmp_path, tie_policy="eager")
    assert maxdiff(notie.encode_text(texts, normalize=False), ref["text_notie_eager"]) < PARITY_TOL


def ckpt_model(path: Path, tie_policy: str) -> InternVLModel:
    from model_zoo.internvl.adapter import load_internvl
    from model_zoo.internvl_models import INTERNVL_14B_224PX

    return load_internvl(str(path), INTERNVL_14B_224PX, "C", "cpu", torch.float32, "math", tie_policy=tie_policy)


# -- loading: official format, errors, .pth, LoRA ---------------------------------------------------
def test_official_format_checkpoint_with_trained_tokenizer(tmp_path):
    tokenizer = train_tokenizer(tmp_path / "tok" / "tokenizer.model", vocab_size=384)
    folder = write_checkpoint(tmp_path / "ck", TINY, random_state_dict(TINY, TINY_SEED), num_shards=3,
                              dtype=torch.bfloat16, tokenizer=tokenizer)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(official_shapes(TINY)) and len(set(index["weight_map"].values())) == 3
    loaded = model_zoo.load_model("internvl-g", checkpoint=str(folder))
    tiny = model_zoo.load_model("internvl-g-tiny")
    pixels = torch.randn(2, 3, 16, 16)
    assert maxdiff(loaded.encode_image(pixels), tiny.encode_image(pixels)) < 1e-6
    assert maxdiff(loaded.encode_text(["a dog", "两只猫"]), tiny.encode_text(["a dog", "两只猫"])) < 1e-6
    images = [Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("L", (20, 50), 128)]
    for mode in ("squash", "crop"):
        assert loaded.preprocess(images, mode=mode).shape == (2, 3, 16, 16)


def _broken(tmp_path: Path, edit) -> str:
    state = random_state_dict(TINY, 1)
    edit(state)
    write_checkpoint(tmp_path, TINY, state, tokenizer=TINY_TOKENIZER)
    with pytest.raises(BenchError) as info:
        model_zoo.load_model("internvl-c", checkpoint=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_mismatch_errors_name_key_and_shapes(tmp_path):
    msg = _broken(tmp_path / "a", lambda s: s.pop("qllama.model.layers.1.mlp.up_proj.weight"))
    assert "qllama.model.layers.1.mlp.up_proj.weight" in msg and "[48, 32]" in msg and "lacks" in msg
    msg = _broken(tmp_path / "b", lambda s: s.update({"text_projection": torch.zeros(32, 8)}))
    assert "text_projection" in msg and "[32, 8]" in msg and "[32, 16]" in msg
    msg = _broken(tmp_path / "c", lambda s: s.update({"vision_model.encoder.layers.5.ls1": torch.zeros(24)}))
    assert "unexpected" in msg and "vision_model.encoder.layers.5.ls1" in msg and "[24]" in msg
    msg = _broken(tmp_path / "d", lambda s: s.update({"qllama.lm_head.weight": torch.zeros(10, 32)}))
    assert "qllama.lm_head.weight" in msg and "[10, 32]" in msg and "[384, 32]" in msg


def test_source_resolution_errors(tmp_path):
    with pytest.raises(BenchError, match="pin a hub revision"):
        ckpt.resolve_source("OpenGVLab/InternVL-14B-224px", ckpt.HubRef("x/y", "main"))
    with pytest.raises(BenchError, match="no config.json"):
        ckpt.resolve_source(str(tmp_path), ckpt.HubRef("x/y", "main"))
    ref = ckpt.parse_hub_spec("OpenGVLab/InternVL@abc123:internvl_c_13b_224px.pth")
    assert ref == ckpt.HubRef("OpenGVLab/InternVL", "abc123", "internvl_c_13b_224px.pth")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "internvl_chat"}))
    with pytest.raises(BenchError, match="model_type"):
        load_config(tmp_path / "config.json")


def _to_pth_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    inverse = {v: k for k, v in {
        "cls_token": "vision_model.embeddings.class_embedding", "pos_embed": "vision_model.embeddings.position_embedding",
        "patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
        "patch_embed.proj.bias": "vision_model.embeddings.patch_embedding.bias"}.items()}
    out = {}
    for name, tensor in state.items():
        if name in inverse:
            out[inverse[name]] = tensor
        elif name.startswith("vision_model.encoder.layers."):
            rest = name[len("vision_model.encoder.layers."):]
            rest = rest.replace(".ls1", ".ls1.gamma").replace(".ls2", ".ls2.gamma")
            out["blocks." + rest] = tensor
        elif name.startswith("qllama.model.") and ".cross_attn." not in name:
            out["transformer." + name[len("qllama.model."):]] = tensor
        elif name in ("text_projection", "logit_scale") or name.startswith("clip_projector."):
            out[name] = tensor
    out["transformer.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    return out


def test_pth_checkpoint_key_mapping(tmp_path, ref, inputs, texts):
    state = _to_pth_names(random_state_dict(TINY, TINY_SEED))
    torch.save(state, tmp_path / "internvl_c_tiny.pth")
    (tmp_path / "tokenizer.model").write_bytes(TINY_TOKENIZER.read_bytes())
    config = replace(TINY, cross_attention_frequency=0, tie_word_embeddings=False)
    source = ckpt.resolve_source(str(tmp_path / "internvl_c_tiny.pth"), ckpt.HubRef("x/y", "main"))
    model = _load_pth(source, "C", torch.device("cpu"), torch.float32, "math", config=config)
    assert model.tokenizer.padding == "longest"
    assert torch.equal(model.tokenize(texts), ref["pth_ids"])
    assert torch.equal(model.tokenize(texts[:2]), ref["pth_ids"][:2, : model.tokenize(texts[:2]).shape[1]])
    # against the official internvl_c_pytorch code (layer scale in fp32, transformers' LlamaModel text tower)
    image, text = model.encode_image(inputs["pixels_16"], normalize=False), model.encode_text(texts, normalize=False)
    assert maxdiff(image, ref["pth_image_c"]) < PARITY_TOL
    assert maxdiff(text, ref["pth_text"]) < PARITY_TOL
    assert maxdiff(model.net.logits(image, text), ref["pth_logits"]) < PARITY_TOL * 10
    # pickles with anything but tensors are refused (weights_only)
    torch.save({"pos_embed": argparse.Namespace(x=1)}, tmp_path / "evil.pth")
    with pytest.raises(BenchError, match="weights-only"):
        ckpt.load_pickle(tmp_path / "evil.pth")


def test_lora_weights_are_merged(tmp_path):
    state = random_state_dict(TINY, TINY_SEED)
    base = "vision_model.encoder.layers.0.attn.qkv"
    a, b = torch.randn(4, 24), torch.randn(72, 4)
    wrapped = {k.replace("vision_model.", "vision_model.base_model.model."): v for k, v in state.items()}
    wrapped[f"{base.replace('vision_model.', 'vision_model.base_model.model.')}.lora_A.default.weight"] = a
    wrapped[f"{base.replace('vision_model.', 'vision_model.base_model.model.')}.lora_B.default.weight"] = b
    write_checkpoint(tmp_path, replace(TINY, use_backbone_lora=4), wrapped, tokenizer=TINY_TOKENIZER)
    model = model_zoo.load_model("internvl-c", checkpoint=str(tmp_path))
    merged = model.net.vision_model.encoder.layers[0].attn.qkv.weight
    assert maxdiff(merged, state[base + ".weight"] + 2.0 * b @ a) < 1e-5


def test_fingerprint_cheap_and_changes_with_weights(tmp_path):
    write_checkpoint(tmp_path, TINY, random_state_dict(TINY, 3), tokenizer=TINY_TOKENIZER)
    first = model_zoo.load_model("internvl-c", checkpoint=str(tmp_path)).fingerprint()
    assert first == model_zoo.load_model("internvl-c", checkpoint=str(tmp_path)).fingerprint()
    write_checkpoint(tmp_path, TINY, random_state_dict(TINY, 4), tokenizer=TINY_TOKENIZER)
    second = model_zoo.load_model("internvl-c", checkpoint=str(tmp_path))
    assert second.fingerprint() != first
    assert model_zoo.load_model("internvl-g", checkpoint=str(tmp_path)).fingerprint() != second.fingerprint()
    prov = second.provenance()
    assert {"model_id", "revision", "resolution", "precision", "attention_backend"} <= set(prov)


# -- registry and Table G ---------------------------------------------------------------------------
def test_registered_models():
    names = set(model_zoo.MODELS.names())
    expected = {"internvl-c", "internvl-g", "internvl-c-pth", "internvl-c-flickr30k-ft", "internvl-g-flickr30k-ft",
                "internvl-c-flickrcn-ft", "internvl-g-flickrcn-ft", "internvl-c-tiny", "internvl-g-tiny"}
    assert expected <= names and expected <= set(ARCHITECTURES)
    assert ARCHITECTURES["internvl-g-flickr30k-ft"][0].image_size == 364
    full: InternVLConfig = ARCHITECTURES["internvl-g"][0]
    assert (full.vision.hidden_size, full.qllama.hidden_size, full.num_query_token) == (3200, 4096, 96)
    assert full.cross_attention_layers() == list(range(0, 32, 2))


def test_tiny_registered_equals_committed_checkpoint(model_g, inputs):
    tiny = _load("internvl-g-tiny", checkpoint=None)
    assert maxdiff(tiny.encode_image(inputs["pixels_16"]), model_g.encode_image(inputs["pixels_16"])) == 0.0


def test_efficiency_command_writes_record(tmp_path):
    from internvl_bench import efficiency
    from internvl_bench.records import load_record

    parser = argparse.ArgumentParser()
    efficiency.add_parser(parser.add_subparsers())
    args = parser.parse_args(["efficiency", "--model", "internvl-g-tiny", "--resolutions", "16,24", "--batch-size", "2",
                              "--precision", "fp32", "--warmup", "0", "--iters", "1", "--random-weights",
                              "--output-dir", str(tmp_path)])
    assert args.func(args) == 0
    record = load_record(tmp_path / "internvl-g-tiny__efficiency__24.json")
    assert record.task == "efficiency" and record.variant == "24"
    assert {"vit_ms", "qllama_ms", "head_ms", "image_ms", "text_ms", "total_ms", "fps", "mfu", "vit_mfu"} <= set(record.metrics)
    # full-size FLOP count: ~3 TFLOPs per 224-px image for InternViT-6B (internvl-model.md)
    assert 2.8e12 < efficiency.vit_flops(ARCHITECTURES["internvl-g"][0], 224) < 3.2e12
    # a baseline pins the counts, never the timings (they move on every run)
    from internvl_bench.reporting import baseline_entries

    pinned = {e["metric"] for e in baseline_entries([record])}
    assert pinned == {"vit_gflops", "image_gflops", "text_gflops", "tokens"}
    assert set(record.details["timed_metrics"]) == set(record.metrics) - pinned


def test_hub_download_uses_pinned_revision(monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, revision, tuple(allow_patterns or ())))
        return str(CHECKPOINT)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = model_zoo.load_model("internvl-g", checkpoint="OpenGVLab/InternVL-14B-224px@0123abcd")
    assert calls[0][:2] == ("OpenGVLab/InternVL-14B-224px", "0123abcd") and "tokenizer.model" in calls[0][2]
    prov = model.provenance()
    assert (prov["model_id"], prov["revision"], prov["mode"]) == ("OpenGVLab/InternVL-14B-224px", "0123abcd", "InternVL-G")
    default = model_zoo.load_model("internvl-c")  # no --checkpoint: the registered pinned revision
    assert calls[-1][:2] == ("OpenGVLab/InternVL-14B-224px", "f64544bca54103b7ea098be7529c274aaf506849")
    assert default.provenance()["revision"] == "f64544bca54103b7ea098be7529c274aaf506849"


def test_added_tokens_split_like_official(tmp_path):
    """Expected ids produced by the official InternVLTokenizer (LlamaTokenizer, transformers 4.37.2) on the tiny
    tokenizer with added_tokens.json {"[PAD]": 384} (the Chinese-Alpaca layout, where [PAD] = 49953)."""
    from model_zoo.internvl.tokenizer import InternVLTokenizer, read_added_tokens

    (tmp_path / "added_tokens.json").write_text('{"[PAD]": 384}')
    tokenizer = InternVLTokenizer(TINY_TOKENIZER, added_tokens=read_added_tokens(tmp_path))
    texts = ["a [PAD] b", "x[PAD]y </s>z", "<unk> <s>", "tab\tnew\nline"]
    expected = [[1, 264, 293, 356, 285, 321, 342, 366, 339, 384, 263, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 264, 293, 356, 285, 321, 342, 366, 369, 384, 338, 358, 2, 338, 362, 2, 0, 0, 0, 0, 0, 0, 0, 0], [1, 264, 293, 356, 285, 321, 342, 366, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1, 264, 293, 356, 285, 321, 342, 366, 344, 310, 12, 341, 342, 357, 13, 345, 260, 342, 2, 0, 0, 0, 0, 0]]
    assert tokenizer(texts)[:, :24].tolist() == expected


def test_full_size_architecture_matches_official_shapes():
    """InternVL-14B on the meta device: every parameter has the official name and shape; 5.9B in InternViT-6B."""
    from model_zoo.internvl.network import InternVLNet

    full = ARCHITECTURES["internvl-g"][0]
    with torch.device("meta"):
        net = InternVLNet(full)
    ours = {name: tuple(p.shape) for name, p in net.named_parameters()}
    official = official_shapes(full, with_unused=False)
    assert ours == official
    assert 5.8e9 < sum(p.numel() for p in net.vision_model.parameters()) < 6.0e9


def test_flash_backend_layout(monkeypatch):
    """The flash branch hands flash_attn_func [B, N, H, D] tensors; a stand-in with the reference math checks
    the transposes on CPU (the real kernel needs CUDA)."""
    import sys
    import types

    from model_zoo.internvl.layers import attention

    def fake_flash_attn_func(q, k, v):
        assert q.shape[1] != q.shape[2] or q.shape[1] == 1  # [B, N, H, D]
        out = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2).float(), k.transpose(1, 2).float(),
                                                                v.transpose(1, 2).float())
        return out.transpose(1, 2).to(q.dtype)

    monkeypatch.setitem(sys.modules, "flash_attn", types.SimpleNamespace(flash_attn_func=fake_flash_attn_func))
    q, k, v = (torch.randn(2, 3, n, 8).to(torch.bfloat16) for n in (5, 7, 7))
    expected = attention(q.float(), k.float(), v.float(), "math")
    assert maxdiff(attention(q, k, v, "flash"), expected) < 2e-2
    assert maxdiff(attention(q, k, v, "flash").float(), attention(q, k, v, "sdpa").float()) < 2e-2
