"""Hugging Face's Llama (`transformers.LlamaForCausalLM`) as a musweep factory.

Grouped-query attention (`kv_group` query heads per key/value head), RMSNorm, rotary positions,
SwiGLU with a hidden size of 3 × width. Widths grow the number of heads at a fixed head size,
so Llama's 1/sqrt(head_dim) attention needs no change for µP. The readout is `lm_head`
(untied); name it so that musweep applies µP's 1/width to it:

    pip install -c constraints/cpu.txt -e '.[hf]'
    python -m sweep.run +ladder=gpt_small model=custom \
        model.factory=examples/hf_llama.py:build model.readout=lm_head

`+model.options.attention=sdpa` uses PyTorch's fused attention instead of the eager one.
"""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM


def build(
    width: int,
    depth: int,
    vocab_size: int,
    seq_len: int,
    head_dim: int = 16,
    kv_group: int = 2,
    attention: str = "eager",
) -> LlamaForCausalLM:
    heads = width // head_dim
    if width % head_dim or heads % kv_group:
        raise ValueError(
            f"width {width} must hold whole heads of {head_dim} in groups of {kv_group}"
        )
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=3 * width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        num_key_value_heads=heads // kv_group,
        head_dim=head_dim,
        max_position_embeddings=seq_len,
        tie_word_embeddings=False,
        use_cache=False,
    )
    config._attn_implementation = attention
    return LlamaForCausalLM(config)
