"""Model facts from a model's own Hugging Face files, for any model the catalog does not know.

  config.json                      architecture (layers, hidden size, heads, KV heads, head dim,
                                   context, vocab, tied embeddings, MoE experts, MLA ranks) and
                                   the checkpoint format (torch_dtype / dtype, quantization_config)
  model.safetensors.index.json     optional: metadata.total_size (bytes), which with a 16-bit
                                   checkpoint gives the exact parameter count

Where they come from (`load_model(source)`):
  a local file        the config.json itself (an index beside it is read too)
  a local directory   a downloaded model (config.json and the index inside it)
  a repo id (a/b)     fetched with huggingface_hub when it is installed and online, cached in
                      its own cache (HF_HOME); offline, the cached copy is used
Multimodal configs keep the language model under text_config; that is what is read.
Parameter counts are computed from the architecture (attention, MLP or experts, embeddings),
replaced by the index's total when the checkpoint is 16-bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from components.facts.catalog import ModelFacts, resolve_model

CONFIG, INDEX = "config.json", "model.safetensors.index.json"

# quantization_config.quant_method -> the catalog's dtype names (vLLM's own method names)
QUANT_METHODS = {
    "fp8": "fp8", "fbgemm_fp8": "fp8", "modelopt": "fp8", "compressed-tensors": None,
    "awq": "awq", "awq_marlin": "awq", "gptq": "gptq", "gptq_marlin": "gptq", "mxfp4": "mxfp4",
}
TORCH_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "bf16"}


class ModelConfigError(ValueError):
    pass


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelConfigError(f"{path}: no such file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelConfigError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"{path}: must be a JSON object")
    return data


def _fetch(repo: str) -> tuple[dict, Optional[dict]]:
    """config.json (and the safetensors index, when published) of a Hugging Face repo."""
    try:
        from huggingface_hub import hf_hub_download  # optional: only for repo ids
    except ImportError:
        raise ModelConfigError(f"{repo!r} is not a local file or directory, and huggingface_hub is not installed "
                               "to fetch it: download the model's config.json and give its path") from None
    try:
        config = _read_json(Path(hf_hub_download(repo, CONFIG)))
    except ModelConfigError:
        raise
    except Exception as exc:  # offline, gated, missing: say which and what to do
        raise ModelConfigError(f"cannot fetch {repo}/{CONFIG} ({type(exc).__name__}: {exc}); offline, give a local "
                               "config.json path (gated repos need HF_TOKEN)") from None
    try:
        index = _read_json(Path(hf_hub_download(repo, INDEX)))
    except Exception:
        index = None
    return config, index


def read(source: str) -> tuple[dict, Optional[dict], str]:
    """(config, safetensors index or None, where they came from)."""
    path = Path(source).expanduser()
    if path.is_dir():
        index = path / INDEX
        return _read_json(path / CONFIG), (_read_json(index) if index.exists() else None), str(path / CONFIG)
    if path.is_file():
        index = path.parent / INDEX
        return _read_json(path), (_read_json(index) if index.exists() else None), str(path)
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        config, index = _fetch(source)
        return config, index, f"huggingface.co/{source} {CONFIG}"
    raise ModelConfigError(f"{source}: no such file or directory (give a config.json, a model directory or a repo id)")


def _get(config: dict, *names: str, default: Any = None) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return default


def dtype_of(config: dict) -> tuple[str, Optional[str]]:
    """(checkpoint dtype, quant_method) from quantization_config, else torch_dtype."""
    q = config.get("quantization_config") or {}
    method = q.get("quant_method")
    if method:
        dtype = QUANT_METHODS.get(method)
        if method == "compressed-tensors":
            fmt = json.dumps(q).lower()
            dtype = "fp8" if "float-quantized" in fmt or '"type": "float"' in fmt else (
                "int8" if '"num_bits": 8' in fmt else ("gptq" if '"num_bits": 4' in fmt else None))
        if dtype is None:
            raise ModelConfigError(f"quantization_config.quant_method {method!r} is not one the planner models "
                                   f"(known: {', '.join(sorted(QUANT_METHODS))})")
        return dtype, (None if method == dtype else method)
    torch_dtype = str(_get(config, "torch_dtype", "dtype", default="bfloat16")).replace("torch.", "")
    return TORCH_DTYPES.get(torch_dtype, "bf16"), None


def facts_from_config(config: dict, index: Optional[dict] = None, repo: Optional[str] = None,
                      source: str = "config.json") -> ModelFacts:
    text = config.get("text_config") or config
    try:
        layers = int(_get(text, "num_hidden_layers", "n_layer", "num_layers"))
        hidden = int(_get(text, "hidden_size", "n_embd", "d_model"))
        heads = int(_get(text, "num_attention_heads", "n_head"))
    except (TypeError, ValueError):
        raise ModelConfigError("config.json lacks num_hidden_layers / hidden_size / num_attention_heads") from None
    kv_heads = int(_get(text, "num_key_value_heads", "num_kv_heads", default=heads))
    head_dim = int(_get(text, "head_dim", default=hidden // heads))
    vocab = int(_get(text, "vocab_size", default=_get(config, "vocab_size", default=32000)))
    context = int(_get(text, "max_position_embeddings", "n_positions", "seq_length", default=4096))
    tied = bool(_get(text, "tie_word_embeddings", default=_get(config, "tie_word_embeddings", default=False)))
    intermediate = int(_get(text, "intermediate_size", "ffn_dim", default=4 * hidden))
    experts = _get(text, "n_routed_experts", "num_local_experts", "num_experts")
    per_token = _get(text, "num_experts_per_tok", "experts_per_token", "moe_topk")
    shared = int(_get(text, "n_shared_experts", "num_shared_experts", default=0) or 0)
    moe_inter = int(_get(text, "moe_intermediate_size", default=intermediate))
    dense_layers = int(_get(text, "first_k_dense_replace", default=0) or 0) if experts else layers
    mla = text.get("kv_lora_rank") is not None
    dtype, method = dtype_of(config)

    # parameters from the architecture
    if mla:
        q_rank = text.get("q_lora_rank") or 0
        nope, rope, v_dim = text.get("qk_nope_head_dim", head_dim), text.get("qk_rope_head_dim", 64), text.get("v_head_dim", head_dim)
        q = hidden * q_rank + q_rank * heads * (nope + rope) if q_rank else hidden * heads * (nope + rope)
        attention = q + hidden * (text["kv_lora_rank"] + rope) + text["kv_lora_rank"] * heads * (nope + v_dim) + heads * v_dim * hidden
    else:
        attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    dense_mlp = 3 * hidden * intermediate
    expert_mlp = 3 * hidden * moe_inter
    embeddings = vocab * hidden * (1 if tied else 2)
    if experts:
        moe_layers = layers - dense_layers
        total = (layers * attention + dense_layers * dense_mlp
                 + moe_layers * (int(experts) + shared) * expert_mlp + moe_layers * hidden * int(experts) + embeddings)
        active = (layers * attention + dense_layers * dense_mlp
                  + moe_layers * (int(per_token) + shared) * expert_mlp + embeddings)
    else:
        total = active = layers * (attention + dense_mlp) + embeddings
    size = ((index or {}).get("metadata") or {}).get("total_size")
    if size and dtype in ("bf16", "fp16"):
        exact = size / 2
        active, total = active * exact / total, exact

    kv_heads_fixed = kv_heads if heads % kv_heads == 0 else heads
    values: dict[str, Any] = dict(
        hf_repos=[repo] if repo else [], params_total=float(total), params_active=float(min(active, total)),
        layers=layers, hidden_size=hidden, attention_heads=heads, kv_heads=kv_heads_fixed, head_dim=head_dim,
        max_context=context, vocab_size=vocab, tied_embeddings=tied, native_dtype=dtype,
        mtp_layers=int(_get(text, "num_nextn_predict_layers", default=0) or 0), source=source,
    )
    if mla:
        values.update(kv_cache="mla", kv_lora_rank=int(text["kv_lora_rank"]), qk_rope_head_dim=int(text.get("qk_rope_head_dim", 64)))
    if experts:
        values.update(experts=int(experts), experts_per_token=int(per_token))
    if repo and method:
        values["checkpoints"] = {repo: {"dtype": dtype, "quant_method": method, "source": source}}
    try:
        return ModelFacts.model_validate(values, by_name=True, by_alias=False)
    except Exception as exc:
        raise ModelConfigError(f"config.json gives inconsistent facts: {exc}") from None


def load_model(source: str, model_id: Optional[str] = None) -> tuple[str, ModelFacts]:
    """(catalog-style key, facts) for a config.json file, a model directory or a repo id.
    A catalog model's verified entry wins over the file (the catalog holds overrides)."""
    if model_id is None and "/" in source and not Path(source).expanduser().exists():
        model_id = source
    if model_id is not None and resolve_model(model_id) is not None:
        return resolve_model(model_id)
    config, index, where = read(source)
    repo = model_id or config.get("_name_or_path") or None
    if repo is not None and repo.count("/") != 1:
        repo = None
    key = (repo or Path(source).expanduser().resolve().parent.name if Path(source).is_file() else (repo or Path(source).name))
    key = str(key).split("/")[-1].lower()
    return key, facts_from_config(config, index, repo, where)
