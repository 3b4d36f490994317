"""Weight and KV-cache bytes against hand computation from the published config.json files.

weight = embedding_params x 2 + (params_total - embedding_params) x bytes_per_param
  embedding_params = vocab x hidden x (1 if tied else 2); 4-bit schemes: 4.25 bits = 0.53125 B
kv/token = 2 x layers x kv_heads x head_dim x 2 bytes (bf16 cache); MLA: layers x (512+64) x 2
"""

from __future__ import annotations

import pytest

from components.facts import model_catalog
from components.planner import memory

CASES = [
    # Llama-3.1-8B: emb = 128256*4096*2 = 1,050,673,152
    ("llama-3.1-8b", "bf16", 1_050_673_152 * 2 + (8.03e9 - 1_050_673_152) * 2, 2 * 32 * 8 * 128 * 2),          # 16.06 GB, 131072 B
    ("llama-3.1-8b", "fp8", 1_050_673_152 * 2 + (8.03e9 - 1_050_673_152) * 1, 131_072),                        # 9.13 GB
    # Llama-3.1-70B: emb = 128256*8192*2 = 2,101,346,304
    ("llama-3.1-70b", "bf16", 2_101_346_304 * 2 + (70.55e9 - 2_101_346_304) * 2, 2 * 80 * 8 * 128 * 2),        # 141.1 GB, 327680 B
    ("llama-3.1-70b", "awq", 2_101_346_304 * 2 + (70.55e9 - 2_101_346_304) * 0.53125, 327_680),               # 40.6 GB
    # Qwen2.5-7B: emb = 152064*3584*2 = 1,089,994,752 ; kv heads 4
    ("qwen2.5-7b", "bf16", 1_089_994_752 * 2 + (7.61e9 - 1_089_994_752) * 2, 2 * 28 * 4 * 128 * 2),            # 57344 B
    ("qwen2.5-7b", "awq", 1_089_994_752 * 2 + (7.61e9 - 1_089_994_752) * 0.53125, 57_344),
    # Mixtral-8x7B: emb = 32000*4096*2 = 262,144,000
    ("mixtral-8x7b", "bf16", 262_144_000 * 2 + (46.7e9 - 262_144_000) * 2, 2 * 32 * 8 * 128 * 2),
    ("mixtral-8x7b", "fp8", 262_144_000 * 2 + (46.7e9 - 262_144_000) * 1, 131_072),
    # DeepSeek-V3 (MLA): emb = 129280*7168*2 = 1,853,358,080 ; latent 512 + rope 64 per layer
    ("deepseek-v3", "fp8", 1_853_358_080 * 2 + (671e9 - 1_853_358_080) * 1, 61 * (512 + 64) * 2),              # 70272 B
    ("deepseek-v3", "awq", 1_853_358_080 * 2 + (671e9 - 1_853_358_080) * 0.53125, 70_272),
    # Llama-3.2-3B: tied embeddings: emb = 128256*3072 = 394,002,432
    ("llama-3.2-3b", "bf16", 394_002_432 * 2 + (3.21e9 - 394_002_432) * 2, 2 * 28 * 8 * 128 * 2),             # 114688 B
    ("llama-3.2-3b", "int8", 394_002_432 * 2 + (3.21e9 - 394_002_432) * 1, 114_688),
    # gpt-oss-120b: emb = 201088*2880*2 = 1,158,266,880 ; head_dim 64
    ("gpt-oss-120b", "mxfp4", 1_158_266_880 * 2 + (116.8e9 - 1_158_266_880) * 0.53125, 2 * 36 * 8 * 64 * 2),   # 73728 B
    ("gpt-oss-120b", "bf16", 1_158_266_880 * 2 + (116.8e9 - 1_158_266_880) * 2, 73_728),
]


@pytest.mark.parametrize("key,quant,weights,kv", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_weight_and_kv_bytes_match_hand_computation(key, quant, weights, kv):
    model = model_catalog()[key]
    assert memory.weight_bytes(model, quant) == pytest.approx(weights, rel=0.01)
    assert memory.kv_bytes_per_token(model) == pytest.approx(kv, rel=0.01)


def test_fp8_kv_cache_halves_bytes_per_token():
    model = model_catalog()["llama-3.1-70b"]
    assert memory.kv_bytes_per_token(model, "fp8") * 2 == memory.kv_bytes_per_token(model)


def test_kv_heads_are_replicated_past_their_count():
    model = model_catalog()["qwen2.5-7b"]  # 4 KV heads
    assert memory.kv_bytes_per_token_per_replica(model, 4) == memory.kv_bytes_per_token(model)
    assert memory.kv_bytes_per_token_per_replica(model, 8) == 2 * memory.kv_bytes_per_token(model)


def test_mla_latent_is_replicated_on_every_rank():
    model = model_catalog()["deepseek-v3"]
    assert memory.kv_bytes_per_token_per_replica(model, 8) == 8 * memory.kv_bytes_per_token(model)
