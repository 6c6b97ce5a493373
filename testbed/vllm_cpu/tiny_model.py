"""Make the tiny Llama the real CPU engine serves, without a download: random weights and a BPE tokenizer
trained here, both seeded, written as a Hugging Face cache entry so `vllm serve ORG/NAME` finds it offline
(HF_HUB_OFFLINE=1) exactly as a pod with a pre-filled model cache would.

Runs inside the engine's own environment (it needs torch, transformers and tokenizers, which the suite's
environment does not have): `ENGINE_PYTHON -m testbed.vllm_cpu.tiny_model HF_HOME REPO_ID`.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
from pathlib import Path

# A Llama small enough to start in about a minute on 2 cores: 3.7 M parameters, 15 MB in float32.
CONFIG = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,  # divisible by PP 2 and 4
    "num_attention_heads": 4,  # divisible by TP 2 and 4
    "num_key_value_heads": 4,
    "vocab_size": 2048,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}
SEED = 20261203
# Bump when the way the files are made changes (the snapshot's name is a hash of everything that decides them).
RECIPE = 4
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
WORDS = [
    "the",
    "a",
    "model",
    "serves",
    "tokens",
    "across",
    "nodes",
    "leader",
    "worker",
    "group",
    "pipeline",
    "tensor",
    "parallel",
    "rank",
    "cache",
    "request",
    "stream",
    "latency",
    "throughput",
    "kubernetes",
    "pod",
    "service",
    "restart",
    "recover",
    "engine",
    "prompt",
    "output",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "gpu",
    "cpu",
    "memory",
    "network",
    "quick",
    "brown",
    "fox",
    "jumps",
]


def _corpus(lines: int) -> list[str]:
    rng = random.Random(SEED)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))) for _ in range(lines)]


def revision() -> str:
    """The snapshot's name: a hash of everything that decides the files, so a change makes a new entry."""
    blob = json.dumps([CONFIG, SEED, CHAT_TEMPLATE, WORDS, RECIPE], sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()


def snapshot_dir(hf_home: Path, repo_id: str) -> Path:
    org, name = repo_id.split("/", 1)
    return hf_home / "hub" / f"models--{org}--{name}" / "snapshots" / revision()


def _never_generate(model: object, token_ids: list[int]) -> None:
    """Random weights would often pick a special token, which detokenizing skips: text-less completions. So
    the residual stream's dimension 0 is made a constant (every embedding 0.1 there, no layer writes to it),
    which keeps it positive after the final norm, and only the special tokens' output rows read it, with a
    large negative weight: their logits are always far below every other token's."""
    import torch

    with torch.no_grad():
        inner = model.model  # type: ignore[attr-defined]
        inner.embed_tokens.weight[:, 0] = 0.1
        for layer in inner.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        head = model.lm_head.weight  # type: ignore[attr-defined]
        head[:, 0] = 0.0
        for token_id in token_ids:
            head[token_id, :] = 0.0
            head[token_id, 0] = -10.0


def build(hf_home: Path, repo_id: str) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = snapshot_dir(hf_home, repo_id)
    if (out / "config.json").exists() and (out / "tokenizer.json").exists():
        return out
    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=CONFIG["vocab_size"],
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(4000), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(tmp)

    torch.manual_seed(SEED)
    # The BPE learns fewer tokens than asked from a small corpus: the model's vocabulary is the tokenizer's,
    # so every id it can generate decodes to text.
    config = LlamaConfig(
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        **{**CONFIG, "vocab_size": len(fast)},
    )
    model = LlamaForCausalLM(config)
    _never_generate(model, fast.all_special_ids)
    model.save_pretrained(tmp, safe_serialization=True)

    tmp.rename(out)
    refs = out.parent.parent / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(revision())
    for stale in out.parent.iterdir():  # earlier recipes' snapshots: nothing refers to them any more
        if stale.name != out.name:
            shutil.rmtree(stale, ignore_errors=True)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or "/" not in argv[1]:
        print("usage: python -m testbed.vllm_cpu.tiny_model HF_HOME ORG/NAME", file=sys.stderr)
        return 2
    print(build(Path(argv[0]), argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
