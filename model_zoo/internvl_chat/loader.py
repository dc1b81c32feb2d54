"""Finding and loading InternVL-Chat 1.0 checkpoints and their InternViT tower.

A chat checkpoint is the released LLaVA folder: ``config.json``, ``pytorch_model-0000N-of-0000M.bin``
shards + ``pytorch_model.bin.index.json`` (or safetensors), the SentencePiece tokenizer files. Pickled
shards are read with ``torch.load(weights_only=True, mmap=True)``: tensors only, never objects.

The tower comes, as in the official loader, from the folder or hub id that ``mm_vision_tower`` names,
tried in this order:

1. ``--vision-tower`` (a folder, a known hub id, or ``OWNER/NAME@REVISION``) when given;
2. ``mm_vision_tower`` as a path that exists (relative to the working directory, like the official code);
3. a folder of that name (or of its last component) beside the chat folder;
4. the hub id at a pinned revision (older configs name a training path such as
   ``pretrained/InternViT-6B-224px``, mapped to the released tower of that name).

The chat shards also hold a copy of the tower (``model.vision_tower.vision_tower.*``). The official loader
ignores it ("weights ... not used") and reads the tower folder instead; so do we, and the record counts the
ignored tensors. Every tensor is checked against the configs (name and shape) while it streams in.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from internvl_bench.errors import BenchError
from model_zoo.internvl import checkpoint as ckpt
from model_zoo.internvl.config import VisionConfig
from model_zoo.internvl_chat.config import ChatConfig, load_tower_config, read_json
from model_zoo.internvl_chat.network import InternVLChatNet
from model_zoo.memory import check_fits

CHAT_PATTERNS = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.model",
                 "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "*.safetensors",
                 "model.safetensors.index.json"]
TOWER_PATTERNS = ["config.json", "*.safetensors", "model.safetensors.index.json"]

#: released towers at pinned revisions (README-only commits after the weights; huggingface.co commit pages)
KNOWN_TOWERS = {
    "OpenGVLab/InternViT-6B-224px": ckpt.HubRef("OpenGVLab/InternViT-6B-224px",
                                                "084bfb607eb04f373bf0349c49eb6bc3ba094919"),
    "OpenGVLab/InternViT-6B-448px-V1-0": ckpt.HubRef("OpenGVLab/InternViT-6B-448px-V1-0",
                                                     "c936f5586def987493641f95b01c58da57e5bcff"),
}
#: last path component of older configs' training paths -> the released tower
TOWER_ALIASES = {
    "InternViT-6B-224px": "OpenGVLab/InternViT-6B-224px",
    "InternViT-6B-448px": "OpenGVLab/InternViT-6B-448px-V1-0",
    "InternViT-6B-448px-V1-0": "OpenGVLab/InternViT-6B-448px-V1-0",
    "intern_vit_6b_448px": "OpenGVLab/InternViT-6B-448px-V1-0",
}
_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)$")
ATTENTION_IMPLEMENTATIONS = {"flash": "flash_attention_2", "sdpa": "sdpa", "math": "eager"}


@dataclass(frozen=True)
class TowerSource:
    path: Path
    repo_id: str | None
    revision: str | None
    #: which rule found it (recorded in provenance)
    found_by: str


def resolve_tower(name: str, chat_folder: Path, override: str | None) -> TowerSource:
    """Where the vision tower lives, by the rules in the module docstring."""
    if override is not None:
        return _tower_from_spec(override, "--vision-tower")
    as_given = Path(name).expanduser()
    if as_given.is_dir():
        return TowerSource(as_given, None, None, "mm_vision_tower path")
    for beside in (chat_folder.parent / name, chat_folder.parent / Path(name).name):
        if beside.is_dir():
            return TowerSource(beside, None, None, "folder beside the chat checkpoint")
    repo = name if name in KNOWN_TOWERS else TOWER_ALIASES.get(Path(name).name)
    if repo is None:
        raise BenchError(f"{chat_folder / 'config.json'}: mm_vision_tower '{name}' is neither a folder nor a released "
                         "InternViT; pass --vision-tower DIR or --vision-tower OWNER/NAME@REVISION")
    return _tower_from_spec(repo, "hub (pinned revision)")


def _tower_from_spec(spec: str, found_by: str) -> TowerSource:
    known = KNOWN_TOWERS.get(spec)
    if known is not None:  # a released tower named without revision: its pinned one
        source = ckpt.resolve_source(None, known, TOWER_PATTERNS)
    else:
        source = ckpt.resolve_source(spec, None, TOWER_PATTERNS)
    if source.kind != "hf":
        raise BenchError(f"{spec}: a vision tower is a folder with config.json and weights, not a single file")
    return TowerSource(source.path, source.repo_id, source.revision, found_by)


def tower_parameter_count(vision: VisionConfig, layers: int) -> int:
    c, i = vision.hidden_size, vision.intermediate_size
    per_layer = 3 * c * c + c * c + c + 2 * c * i + i + c + 6 * c
    positions = (vision.image_size // vision.patch_size) ** 2 + 1
    return layers * per_layer + c * 3 * vision.patch_size ** 2 + c + (positions + 1) * c


def projector_parameter_count(config: ChatConfig) -> int:
    width, mm = config.language.hidden_size, config.mm_hidden_size
    return mm * width + width + (config.projector_depth - 1) * (width * width + width)


@dataclass
class LoadedChat:
    net: InternVLChatNet
    config: ChatConfig
    vision: VisionConfig
    chat_files: list[Path]
    tower_files: list[Path]
    #: tensors of the chat shards' tower copy that were not used
    ignored_tower_copy: int


def load_chat_network(config: ChatConfig, chat_folder: Path, tower: TowerSource, device: torch.device,
                      dtype: torch.dtype, lm_attention: str, label: str) -> LoadedChat:
    """Build the network on ``meta`` and stream the tower and chat weights into it."""
    vision = load_tower_config(tower.path)
    tower_label = str(tower.path / "config.json")
    config.check_tower(vision, tower_label, str(chat_folder / "config.json"))
    run_layers = config.layers_to_run(vision)
    parameters = (config.language.parameter_count() + tower_parameter_count(vision, run_layers)
                  + projector_parameter_count(config))
    check_fits(label, parameters, dtype, device)
    chat_files, tower_files = ckpt.weight_files(chat_folder), ckpt.weight_files(tower.path)
    with torch.device("meta"):
        net = InternVLChatNet(config, vision, lm_attention)
    layer0 = {name.removeprefix("vision_tower."): tuple(p.shape) for name, p in net.named_parameters()
              if name.startswith("vision_tower.encoder.layers.0.")}

    def tower_name(raw: str, tensor: torch.Tensor) -> str | None:
        name = raw.removeprefix("vision_model.")
        match = _LAYER.match(name)
        if match and int(match.group(1)) >= run_layers:  # blocks after the selected layer never run
            want = layer0.get(f"encoder.layers.0.{match.group(2)}")
            if int(match.group(1)) >= vision.num_hidden_layers or want is None or tuple(tensor.shape) != want:
                raise BenchError(f"{tower.path}: checkpoint key '{raw}' {ckpt.shape_text(tensor.shape)} does not fit "
                                 f"the tower's config.json ({vision.num_hidden_layers} layers)")
            return None
        return "vision_tower." + name

    ignored = 0

    def chat_name(raw: str, tensor: torch.Tensor) -> str | None:
        nonlocal ignored
        if raw.startswith("model.vision_tower."):
            ignored += 1
            return None
        if raw.endswith("rotary_emb.inv_freq"):
            return None  # rebuilt in float32 below
        if raw.startswith("model.mm_projector."):
            return raw.removeprefix("model.")
        if raw.startswith("model.") or raw == "lm_head.weight":
            return "language_model." + raw
        return raw  # reported as unexpected

    loaded = ckpt.stream_parameters(net, ckpt.iter_tensors(tower_files), tower_name, device, dtype, str(tower.path),
                                    "is this an InternViT tower?")
    loaded |= ckpt.stream_parameters(net, ckpt.iter_tensors(chat_files), chat_name, device, dtype, str(chat_folder),
                                     "is this an InternVL-Chat / LLaVA checkpoint?")
    missing = [name for name, _ in net.named_parameters() if name not in loaded]
    if missing:
        owner = tower.path if missing[0].startswith("vision_tower.") else chat_folder
        raise BenchError(f"{owner}: checkpoint lacks key '{_checkpoint_key(missing[0])}' ({len(missing)} missing in "
                         "all); re-download the checkpoint")
    _rotary_in_fp32(net, device)
    return LoadedChat(net.eval(), config, vision, chat_files, tower_files, ignored)


def random_chat_network(config: ChatConfig, vision: VisionConfig, device: torch.device, dtype: torch.dtype,
                        lm_attention: str, label: str, seed: int = 0) -> LoadedChat:
    """The architecture with seeded random weights allocated on ``device`` (timing full-size shapes offline)."""
    run_layers = config.layers_to_run(vision)
    check_fits(label, config.language.parameter_count() + tower_parameter_count(vision, run_layers)
               + projector_parameter_count(config), dtype, device)
    with torch.device("meta"):
        net = InternVLChatNet(config, vision, lm_attention)
    net = net.to(dtype=dtype).to_empty(device=device)
    ckpt.fill_random_(net, device, seed)
    _rotary_in_fp32(net, device)
    return LoadedChat(net.eval(), config, vision, [], [], 0)


def _checkpoint_key(name: str) -> str:
    """Our parameter name -> the name it has in the checkpoint files."""
    if name.startswith("vision_tower."):
        return name.removeprefix("vision_tower.")
    if name.startswith("language_model."):
        return name.removeprefix("language_model.")
    return "model." + name


def _rotary_in_fp32(net: InternVLChatNet, device: torch.device) -> None:
    """Rebuild the rotary ``inv_freq`` tables in float32 on ``device`` (they were never loaded: built on meta).

    transformers computes cos / sin from ``inv_freq`` in float32 at every step; a table cast to bf16/fp16
    would round the frequencies themselves and move every logit."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    model = net.language_model.model
    model.rotary_emb = LlamaRotaryEmbedding(model.config).to(device)
    for name, buffer in net.named_buffers():
        if buffer.is_meta:
            raise BenchError(f"internal: buffer '{name}' was not initialised")


def generation_config_note(chat_folder: Path) -> dict | None:
    """The released ``generation_config.json`` sampling settings, recorded as ignored (decoding is greedy)."""
    path = chat_folder / "generation_config.json"
    if not path.is_file():
        return None
    data = read_json(path, "generation_config.json")
    return {k: data[k] for k in ("do_sample", "temperature", "top_p", "top_k", "num_beams", "max_length") if k in data}


def chat_fingerprint(loaded: LoadedChat, chat_source: ckpt.Source, tower: TowerSource, extra: dict) -> str:
    """Identity of everything an answer depends on: configs, weight files, tokenizer, settings."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"chat": asdict(loaded.config), "tower": asdict(loaded.vision), **extra},
                             sort_keys=True, default=str).encode())
    digest.update(f"{chat_source.repo_id}@{chat_source.revision}|{tower.repo_id}@{tower.revision}".encode())
    for file in [*loaded.chat_files, *loaded.tower_files]:
        digest.update(f"{file.name}={ckpt.file_identity(file)}".encode())
    return digest.hexdigest()
