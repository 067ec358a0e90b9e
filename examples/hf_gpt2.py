"""Hugging Face's GPT-2 (`transformers.GPT2LMHeadModel`) as a musweep factory.

Widths grow the number of heads at a fixed head size, so GPT-2's 1/sqrt(head_dim) attention
needs no change for µP. The readout is `lm_head`, tied to the token embedding by default (as
GPT-2 ships); name it so that musweep applies µP's 1/width to it:

    pip install -c constraints/cpu.txt -e '.[hf]'
    python -m sweep.run +ladder=gpt_small model=custom \
        model.factory=examples/hf_gpt2.py:build model.readout=lm_head

`+model.options.tied=false` unties it; `+model.options.head_dim=N` sets the head size. Dropout is
off (the ladder's runs are short and their losses are compared across widths). Fan-in of
GPT-2's `Conv1D` projections, which store their weight (in, out), is read from the layer.
"""

from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel


def build(
    width: int, depth: int, vocab_size: int, seq_len: int, tied: bool = True, head_dim: int = 16
) -> GPT2LMHeadModel:
    if width % head_dim:
        raise ValueError(f"width {width} is not a multiple of head_dim {head_dim}")
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=width,
        n_layer=depth,
        n_head=width // head_dim,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=tied,
        bos_token_id=None,  # GPT-2's 50256 lies outside a small vocabulary
        eos_token_id=None,
        use_cache=False,
    )
    config._attn_implementation = "eager"
    return GPT2LMHeadModel(config)
