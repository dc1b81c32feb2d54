"""The OpenCLIP adapter: preprocessing modes, explicit checkpoints, fingerprints, weight files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import model_zoo
from internvl_bench.errors import BenchError


@pytest.fixture(scope="module")
def tiny():
    return model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0")


def test_squash_keeps_the_whole_image_and_crop_cuts_the_sides(tiny) -> None:
    image = Image.new("RGB", (128, 64), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 16, 64))  # white band on the far left
    squash, crop = tiny.preprocess([image], "squash"), tiny.preprocess([image], "crop")
    assert squash.shape == crop.shape == (1, 3, 64, 64)
    assert squash[0, 0, :, 0].mean() > 1.0  # band survives the squash
    assert crop[0, 0, :, 0].mean() < 0.0  # and is cropped away


def test_encoders_return_unit_vectors_on_request(tiny) -> None:
    pixels = tiny.preprocess([Image.new("RGB", (64, 64), (10, 200, 30))])
    assert torch.allclose(tiny.encode_image(pixels).norm(dim=-1), torch.ones(1))
    raw = tiny.encode_text(["a green square"], normalize=False)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(1))


def test_fingerprint_follows_the_weights(tiny) -> None:
    assert tiny.fingerprint() == model_zoo.load_model("openclip:tiny-clip", checkpoint="random:0").fingerprint()
    assert tiny.fingerprint() != model_zoo.load_model("openclip:tiny-clip", checkpoint="random:1").fingerprint()


def test_weights_file_loads_and_mismatch_names_the_key(tiny, tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in tiny.network.state_dict().items()}
    good = tmp_path / "tiny.safetensors"
    save_file(state, str(good))
    loaded = model_zoo.load_model("openclip:tiny-clip", checkpoint=str(good))
    assert torch.equal(loaded.encode_text(["x"]), tiny.encode_text(["x"]))
    del state["logit_scale"]
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    with pytest.raises(BenchError, match="bad.safetensors: weights do not fit tiny-clip: missing key 'logit_scale'"):
        model_zoo.load_model("openclip:tiny-clip", checkpoint=str(bad))


def test_unknown_pretrained_tag_lists_the_known_ones() -> None:
    with pytest.raises(BenchError, match="unknown checkpoint for openclip:ViT-B-32.*laion2b_s34b_b79k"):
        model_zoo.load_model("openclip:ViT-B-32", checkpoint="laion9b")


def test_precision_names_are_checked() -> None:
    with pytest.raises(BenchError, match="unknown precision 'fp8'"):
        model_zoo.load_model("openclip:tiny-clip", checkpoint="random", precision="fp8")


def test_trimmed_padding_gives_the_full_context_features(tiny) -> None:
    texts = ["a photo of a cat.", "a much longer caption that uses many more of the context tokens than the others", ""]
    full = torch.nn.functional.normalize(tiny.network.encode_text(tiny.tokenize(texts)), dim=-1)
    assert tiny.provenance()["text_padding_trimmed"]
    assert torch.allclose(tiny.encode_text(texts), full, atol=1e-6)
