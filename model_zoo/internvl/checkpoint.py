"""Finding and loading InternVL checkpoints.

Sources (``resolve_source``):
- a local folder in the Hugging Face layout: ``config.json``, ``model.safetensors.index.json`` + shards
  (or ``model.safetensors``; or ``pytorch_model*.bin`` with their index), ``tokenizer.model``;
- a hub id with a pinned revision, ``OWNER/NAME@REVISION``, fetched with ``huggingface_hub.snapshot_download``
  (only config, index, weights and tokenizer files);
- the PyTorch pickle ``internvl_c_13b_224px.pth`` (a local file, or ``OWNER/NAME@REVISION:FILE`` on the hub),
  read with ``torch.load(weights_only=True)`` and renamed to our keys.

Loading (``load_network``) builds the network on the ``meta`` device, then reads one tensor at a time,
checks its name and shape against the config, casts it to the target dtype and device and puts it in
place, so peak host memory stays near one copy of the weights. Every mismatch (missing key, wrong shape,
unexpected key) is a ``BenchError`` naming the first offending key and both shapes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from internvl_bench.errors import BenchError
from model_zoo.internvl.config import InternVLConfig
from model_zoo.internvl.network import InternVLNet

#: checkpoint tensors that exist in the official files but are not used for features
UNUSED = re.compile(r"^(qllama\.lm_head\.weight|itm_head\.(weight|bias))$|rotary_emb\.inv_freq$|position_ids$")
#: how ``tie_word_embeddings`` is honoured (see ``load_network``)
TIE_POLICIES = ("official-eval", "eager")


@dataclass
class Source:
    """Where weights come from. ``kind`` is 'hf' (a checkpoint folder) or 'pth' (the PyTorch pickle)."""

    kind: str
    path: Path
    repo_id: str | None = None
    revision: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.repo_id else str(self.path)


@dataclass(frozen=True)
class HubRef:
    repo_id: str
    revision: str
    filename: str | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" + (f":{self.filename}" if self.filename else "")


_HUB_SPEC = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(@(?P<rev>[\w./-]+?))?(:(?P<file>[\w./-]+))?$")
HF_PATTERNS = ["config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.model",
               "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"]


def parse_hub_spec(spec: str) -> HubRef | None:
    match = _HUB_SPEC.match(spec)
    if not match or not match.group("rev"):
        return None
    return HubRef(match.group("repo"), match.group("rev"), match.group("file"))


def resolve_source(checkpoint: str | None, default: HubRef | None, patterns: list[str] = HF_PATTERNS) -> Source:
    """A local path, ``ID@REVISION[:FILE]`` or None (the registered default) -> a local ``Source``;
    ``patterns`` are the files a hub download fetches (PyTorch shards are added when there are no safetensors)."""
    if checkpoint is None:
        if default is None:
            raise BenchError("no checkpoint given and this model has no default; pass --checkpoint")
        ref = default
    else:
        path = Path(checkpoint).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise BenchError(f"{path}: no config.json; pass a checkpoint folder in the Hugging Face layout")
            return Source("hf", path)
        if path.is_file():
            if path.suffix in (".pth", ".pt", ".bin"):
                return Source("pth", path)
            raise BenchError(f"{path}: a checkpoint must be a folder with config.json or a .pth file")
        ref = parse_hub_spec(checkpoint)
        if ref is None:
            if _HUB_SPEC.match(checkpoint):
                raise BenchError(f"checkpoint '{checkpoint}': pin a hub revision, e.g. '{checkpoint}@<commit sha>'")
            raise BenchError(f"checkpoint '{checkpoint}': no such file or folder, and not a hub id 'OWNER/NAME@REVISION'")
    return _download(ref, patterns)


def _download(ref: HubRef, patterns: list[str]) -> Source:
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a declared dependency
        raise BenchError("downloading checkpoints needs the huggingface_hub package") from exc
    try:
        if ref.filename:
            path = Path(huggingface_hub.hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision))
            return Source("pth", path, ref.repo_id, ref.revision)
        folder = Path(huggingface_hub.snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=patterns))
        if not any(folder.glob("*.safetensors")):  # older uploads: PyTorch shards only
            folder = Path(huggingface_hub.snapshot_download(
                ref.repo_id, revision=ref.revision, allow_patterns=patterns + ["pytorch_model*.bin", "*.bin.index.json"]))
    except Exception as exc:  # network, auth, missing revision: all user-fixable
        raise BenchError(f"cannot download {ref}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                         "check the id and revision, or download it yourself and pass the folder") from exc
    return Source("hf", folder, ref.repo_id, ref.revision)


# -- reading tensors --------------------------------------------------------------------------------
def weight_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder, in index order."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (ValueError, KeyError) as exc:
                raise BenchError(f"{index}: not a valid weight index ({exc}); re-download the checkpoint") from exc
            files = list(dict.fromkeys(weight_map.values()))
            missing = [f for f in files if not (folder / f).is_file()]
            if missing:
                raise BenchError(f"{folder / missing[0]}: shard named in {index_name} is missing; re-download it")
            return [folder / f for f in files]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return [folder / single]
    raise BenchError(f"{folder}: no weights (model.safetensors[.index.json] or pytorch_model.bin[.index.json])")


def iter_tensors(files: list[Path]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, CPU tensor) one at a time; safetensors via safe_open, pickles via weights-only torch.load."""
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            try:
                handle = safe_open(str(file), framework="pt", device="cpu")
            except Exception as exc:
                raise BenchError(f"{file}: not a readable safetensors file ({exc}); re-download it") from exc
            with handle as f:
                for name in f.keys():
                    yield name, f.get_tensor(name)
        else:
            state = load_pickle(file)
            for name in list(state):
                yield name, state.pop(name)


def load_pickle(file: Path) -> dict[str, torch.Tensor]:
    """A PyTorch state dict read with ``weights_only=True`` (memory-mapped when the format allows)."""
    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BenchError(f"{file}: cannot be read as a weights-only PyTorch checkpoint ({type(exc).__name__}); "
                         "only plain tensor state dicts are accepted") from exc
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(state, dict) and wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise BenchError(f"{file}: expected a state dict of tensors, found {type(state).__name__}")
    return state


# -- key handling -----------------------------------------------------------------------------------
_LORA = re.compile(r"^(?P<base>.+)\.lora_(?P<ab>[AB])(\.default)?\.weight$")


def normalise_hf_key(name: str) -> str:
    """Drop the peft wrappers of LoRA-wrapped checkpoints (``base_model.model.``, ``.base_layer``)."""
    return name.replace("base_model.model.", "").replace(".base_layer.", ".")


def pth_key(name: str) -> str | None:
    """Name in ``internvl_c_13b_224px.pth`` -> our name (None for tensors we do not use)."""
    simple = {
        "cls_token": "vision_model.embeddings.class_embedding",
        "pos_embed": "vision_model.embeddings.position_embedding",
        "patch_embed.proj.weight": "vision_model.embeddings.patch_embedding.weight",
        "patch_embed.proj.bias": "vision_model.embeddings.patch_embedding.bias",
        "text_projection": "text_projection",
        "logit_scale": "logit_scale",
    }
    if name in simple:
        return simple[name]
    if name.startswith("blocks."):
        rest = name[len("blocks."):].replace(".ls1.gamma", ".ls1").replace(".ls2.gamma", ".ls2")
        return "vision_model.encoder.layers." + rest
    if name.startswith("clip_projector."):
        return name
    if name.startswith("transformer."):
        return None if name.endswith("rotary_emb.inv_freq") else "qllama.model." + name[len("transformer."):]
    return name  # unknown: reported as unexpected


def shape_text(shape) -> str:
    """'[3, 4]' for error messages."""
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    owner._parameters[leaf] = nn.Parameter(value, requires_grad=False)


def stream_parameters(
    module: nn.Module,
    tensors: Iterator[tuple[str, torch.Tensor]],
    rename: Callable[[str, torch.Tensor], str | None],
    device: torch.device,
    dtype: torch.dtype,
    source: str,
    hint: str = "wrong config.json or wrong model?",
) -> set[str]:
    """Put each checkpoint tensor into the matching parameter of ``module`` (built on ``meta``), cast on the
    fly; ``rename`` maps a checkpoint name to a parameter name or None (not used). Returns the names filled.
    An unknown name or a shape that disagrees with the module is a one-line ``BenchError``."""
    expected = {name: tuple(p.shape) for name, p in module.named_parameters()}
    loaded: set[str] = set()
    for raw_name, tensor in tensors:
        name = rename(raw_name, tensor)
        if name is None:
            continue
        if name not in expected:
            raise BenchError(f"{source}: unexpected checkpoint key '{raw_name}' {shape_text(tensor.shape)}: the model "
                             f"built from the config has no such parameter ({hint})")
        if tuple(tensor.shape) != expected[name]:
            raise BenchError(f"{source}: checkpoint key '{raw_name}' has shape {shape_text(tensor.shape)} but the config "
                             f"implies {shape_text(expected[name])}; the weights do not match config.json")
        _set(module, name, tensor.to(device=device, dtype=dtype))
        loaded.add(name)
    return loaded


def load_network(
    config: InternVLConfig,
    tensors: Iterator[tuple[str, torch.Tensor]],
    device: torch.device,
    dtype: torch.dtype,
    source: str,
    with_queries: bool = True,
    rename=normalise_hf_key,
    tie_policy: str = "official-eval",
) -> InternVLNet:
    """Build ``InternVLNet(config)`` on meta and fill it from ``tensors`` (streamed, cast on the fly).

    ``tie_policy`` decides what ``tie_word_embeddings`` (top-level, absent = true) does:
    - ``official-eval`` (default): what the official evaluations get. They load with
      ``from_pretrained(torch_dtype=float16)``, which takes transformers' low-memory path; there the
      input embedding keeps the checkpoint's own ``embed_tokens`` table whatever the flag says.
    - ``eager``: transformers' eager path (fp32/bf16 without ``low_cpu_mem_usage``): with the flag true,
      ``lm_head`` and ``embed_tokens`` share one tensor and the ``lm_head`` table (loaded after the
      embedding: later module, same or later shard) overwrites it -- every text feature changes. Kept to
      reproduce that pitfall, never the default.
    """
    if tie_policy not in TIE_POLICIES:
        raise BenchError(f"unknown tie policy '{tie_policy}'; choose from {', '.join(TIE_POLICIES)}")
    with torch.device("meta"):
        net = InternVLNet(config, with_qllama_queries=with_queries)
    expected = {name: tuple(p.shape) for name, p in net.named_parameters()}
    unused_shapes = {
        "qllama.lm_head.weight": (config.qllama.vocab_size, config.qllama.hidden_size),
        "itm_head.weight": (2, config.qllama.hidden_size),
        "itm_head.bias": (2,),
    }
    embed_from_lm_head = tie_policy == "eager" and config.tie_word_embeddings
    embed_key = "qllama.model.embed_tokens.weight"
    loaded: set[str] = set()
    lm_head_seen = False
    lora: dict[str, dict[str, torch.Tensor]] = {}
    for raw_name, tensor in tensors:
        name = rename(raw_name)
        if name is None:
            continue
        lora_match = _LORA.match(name)
        if lora_match:
            lora.setdefault(lora_match.group("base") + ".weight", {})[lora_match.group("ab")] = tensor
            continue
        if UNUSED.search(name):
            want = unused_shapes.get(name)
            if want is not None and tuple(tensor.shape) != want:
                raise BenchError(f"{source}: checkpoint key '{raw_name}' has shape {shape_text(tensor.shape)} but the "
                                 f"config implies {shape_text(want)}; the weights do not match config.json")
            if name == "qllama.lm_head.weight" and embed_from_lm_head:
                name, lm_head_seen = embed_key, True
            else:
                continue
        elif name == embed_key and embed_from_lm_head and lm_head_seen:
            continue  # the shared tensor keeps the lm_head table
        if name not in expected:
            raise BenchError(f"{source}: unexpected checkpoint key '{raw_name}' {shape_text(tensor.shape)}: the model "
                             "built from config.json has no such parameter (wrong config.json or wrong model?)")
        if tuple(tensor.shape) != expected[name]:
            raise BenchError(f"{source}: checkpoint key '{raw_name}' has shape {shape_text(tensor.shape)} but config.json "
                             f"implies {shape_text(expected[name])}")
        _set(net, name, tensor.to(device=device, dtype=dtype))
        loaded.add(name)
    missing = [name for name in expected if name not in loaded]
    if missing:
        raise BenchError(f"{source}: checkpoint lacks key '{missing[0]}' (expected shape {shape_text(expected[missing[0]])} "
                         f"from config.json; {len(missing)} missing in all)")
    if lora:
        _merge_lora(net, lora, config, source)
    return net.eval()


def _merge_lora(net: InternVLNet, lora: dict[str, dict[str, torch.Tensor]], config: InternVLConfig, source: str) -> None:
    """W += B @ A * alpha / r with the official alpha = 2 r (so the scale is 2), computed in float32."""
    params = dict(net.named_parameters())
    for name, parts in lora.items():
        if name not in params or set(parts) != {"A", "B"}:
            raise BenchError(f"{source}: LoRA tensors for '{name}' do not match a model weight (found {sorted(parts)})")
        rank = parts["A"].shape[0]
        flag, key = ((config.use_backbone_lora, "use_backbone_lora") if name.startswith("vision_model.")
                     else (config.use_qllama_lora, "use_qllama_lora"))
        if not flag:
            raise BenchError(f"{source}: LoRA tensors for '{name}' but config.json has {key} = 0; fix config.json")
        weight = params[name]
        delta = parts["B"].float() @ parts["A"].float() * (2 * flag / rank)  # lora_alpha = 2 r in the official code
        if delta.shape != weight.shape:
            raise BenchError(f"{source}: LoRA update for '{name}' has shape {shape_text(delta.shape)} but the weight is "
                             f"{shape_text(weight.shape)}")
        weight.data = (weight.data.float() + delta.to(weight.device)).to(weight.dtype)


def random_network(config: InternVLConfig, device: torch.device, dtype: torch.dtype, seed: int = 0,
                   with_queries: bool = True) -> InternVLNet:
    """The architecture of ``config`` with seeded random weights, allocated directly on ``device``
    (for timing full-size models without downloading weights)."""
    with torch.device("meta"):
        net = InternVLNet(config, with_qllama_queries=with_queries)
    net = net.to(dtype=dtype).to_empty(device=device)  # allocated once, in the target dtype
    fill_random_(net, device, seed)
    return net.eval()


def fill_random_(module: nn.Module, device: torch.device, seed: int = 0) -> None:
    """Seeded weights in place: matrices N(0, 0.02), norms 1, layer scales 0.1, biases 0 (timing only)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02, generator=gen)
            elif "norm" in name or name.endswith(("ls1", "ls2")):
                p.fill_(1.0 if "norm" in name else 0.1)
            elif name == "logit_scale":
                p.fill_(4.6052)
            else:
                p.zero_()
    for p in module.parameters():
        p.requires_grad_(False)


# -- identity ---------------------------------------------------------------------------------------
def file_identity(path: Path) -> str:
    """Cheap identity of a (possibly huge) file: a hub blob's content hash when the file is a link into the
    Hugging Face cache, else size + mtime + sha256 of its first and last 64 KiB."""
    real = Path(os.path.realpath(path))
    if real.parent.name == "blobs" and re.fullmatch(r"[0-9a-f]{40,64}", real.name):
        return f"blob:{real.name}"
    stat = real.stat()
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        digest.update(handle.read(65536))
        if stat.st_size > 65536:
            handle.seek(max(stat.st_size - 65536, 65536))
            digest.update(handle.read(65536))
    return f"{stat.st_size}:{stat.st_mtime_ns}:{digest.hexdigest()[:16]}"


def source_fingerprint(source: Source, config: InternVLConfig, files: list[Path], extra: str = "") -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(config.to_official_dict(), sort_keys=True).encode())
    digest.update(f"{source.repo_id}@{source.revision}|{extra}".encode())
    for file in files:
        digest.update(f"{file.name}={file_identity(file)}".encode())
    return digest.hexdigest()
