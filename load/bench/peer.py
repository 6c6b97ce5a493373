"""guidellm as a peer in ``load.bench.capacity`` (``--peer-python``), measured by the same server counters.

The peer lives in its own venv (``python -m venv /tmp/peer && /tmp/peer/bin/pip install guidellm``).
Its synthetic prompts need a tokenizer and nothing may be downloaded here, so a small byte-level BPE
tokenizer is trained locally with the peer's own ``tokenizers`` package and passed as a path.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

_TOKENIZER_SCRIPT = """
import random, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
random.seed(0)
words = "the of and to in is that for it as was with be by on not this are or from at which but have".split()
text = [" ".join(random.choice(words) for _ in range(200)) for _ in range(200)]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
alphabet = pre_tokenizers.ByteLevel.alphabet()
tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=600, initial_alphabet=alphabet, special_tokens=["<eos>"]))
PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>").save_pretrained(sys.argv[1])
"""


def guidellm_argv(
    url: str, model: str, shape: Any, workdir: Path, peer_python: Path
) -> tuple[list[str], Path]:
    """The command measuring ``shape`` with guidellm, and the file it writes its report to."""
    tokenizer = workdir / "tokenizer"
    if not tokenizer.exists():
        subprocess.run(
            [str(peer_python), "-c", _TOKENIZER_SCRIPT, str(tokenizer)], check=True, capture_output=True
        )
    out = workdir / f"guidellm-{shape.name}.json"
    argv = [
        str(peer_python), "-m", "guidellm", "run",
        "--backend", f"kind=openai_http,target={url},model={model}",
        "--profile", f"kind=concurrent,streams={shape.concurrency}",
        "--constraint", f"kind=max_requests,count={shape.requests}",
        "--data", f"kind=synthetic_text,prompt_tokens={shape.input_len},output_tokens={shape.output_len}",
        "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
        "--output", f"kind=json,path={out}", "--disable-console",
    ]  # fmt: skip
    return argv, out


def guidellm_ttft_p50(path: Path) -> float | None:
    """The TTFT median guidellm reports (its JSON layout moves between versions: search for it)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    found: list[float] = []

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if "time_to_first_token" in key and "successful" in node and isinstance(node["successful"], dict):
                median = node["successful"].get("median")
                if isinstance(median, int | float):
                    found.append(float(median))
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    walk(report)
    return found[0] if found else None
