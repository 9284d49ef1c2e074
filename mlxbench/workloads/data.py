"""Token batches for the training workload: seeded random ids, or a local text file tokenized once.

A batch is an int32 array of shape (batch_size, seq_length + 1): a step trains on
``batch[:, :-1]`` to predict ``batch[:, 1:]``, so every sample contributes exactly
``seq_length`` tokens and no padding ever enters the loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np

from mlxbench.errors import UserError

# Distinct batches a step cycles through: enough that steps do not all see one batch,
# few enough to cost nothing in memory.
RANDOM_BATCHES = 4
DATA_SUFFIXES = (".txt", ".jsonl")


def check_data(path: str) -> str | None:
    """None if ``path`` is a readable .txt or .jsonl file, else what is wrong."""
    file = Path(path).expanduser()
    if file.suffix not in DATA_SUFFIXES:
        return f"expected a .txt or .jsonl file, got {path!r}"
    if not file.is_file():
        return f"expected an existing file, got {path!r} (not found)"
    return None


def random_batches(vocab_size: int, batch_size: int, seq_length: int, seed: int) -> mx.array:
    """RANDOM_BATCHES batches of token ids drawn uniformly from the vocabulary under ``seed``."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(RANDOM_BATCHES, batch_size, seq_length + 1), dtype=np.int32)
    return mx.array(ids)


def _documents(file: Path) -> list[str]:
    """The texts of a .txt file (one document) or a .jsonl file (mlx-lm's text or prompt/completion)."""
    if file.suffix == ".txt":
        return [file.read_text(encoding="utf-8")]
    texts = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{file}: line {number}: expected a JSON object, got invalid JSON ({exc.msg})")
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            texts.append(row["text"])
        elif isinstance(row, dict) and isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
            texts.append(row["prompt"] + row["completion"])
        else:
            raise UserError(f"{file}: line {number}: expected an object with \"text\" "
                            f"or \"prompt\" and \"completion\" strings, got {line[:60]!r}")
    return texts


def tokenize(texts: list[str], model: str, vocab_size: int) -> np.ndarray:
    """One stream of token ids for ``texts``.

    A local model directory tokenizes with its own tokenizer (documents joined by its EOS
    token). A preset has no real tokenizer, so its ids are the text's UTF-8 bytes modulo
    the vocabulary (newline between documents): real byte statistics, not a real
    tokenization, which is all a speed and memory benchmark needs.
    """
    from mlxbench.workloads.models import is_local

    if not is_local(model):
        data = "\n".join(texts).encode("utf-8")
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32) % vocab_size
    from mlx_lm.utils import load_tokenizer

    tokenizer = load_tokenizer(Path(model).expanduser())
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer.encode(text) + eos)
    return np.asarray(ids, dtype=np.int32)


def file_batches(path: str, model: str, vocab_size: int, batch_size: int, seq_length: int) -> mx.array:
    """Batches cut from a tokenized file: consecutive windows of seq_length + 1 tokens, no padding."""
    file = Path(path).expanduser()
    ids = tokenize(_documents(file), model, vocab_size)
    window = seq_length + 1
    count = len(ids) // (window * batch_size)
    if count == 0:
        raise UserError(f"{path}: data: expected at least {batch_size * window} tokens "
                        f"(batch_size × (seq_length + 1)), got {len(ids)}")
    usable = ids[: count * batch_size * window]
    return mx.array(usable.reshape(count, batch_size, window))


def step_lengths(seq_length: int, jitter: int, seed: int):
    """Each step's sequence length, forever: ``seq_length``, or with ``jitter`` a seeded uniform draw
    from ``seq_length - jitter`` to ``seq_length`` (the same lengths in the same order for a seed)."""
    rng = np.random.default_rng(seed)
    while True:
        yield seq_length - int(rng.integers(0, jitter + 1)) if jitter else seq_length
