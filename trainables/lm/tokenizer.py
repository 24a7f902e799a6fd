"""Tokenizers trained with the ``tokenizers`` library, cached on disk, and their statistics.

A tokenizer is a function of its training text, algorithm, vocabulary size and the library's
version, so the cache file is named by all four: ``<cache>/<algorithm>-<vocab>-<sha256 of text,
first 16 hex>-tk<version>.json``. The cache folder is ``$REPROTUNE_TOKENIZER_CACHE``, default
``<project>/.cache/tokenizers`` (gitignored). Files are written to a temporary name and renamed,
so concurrent trials never read half a file.

Both algorithms keep the text as it is (no normalizer), so the bytes a model is scored on are the
bytes of the text. Special tokens come first: ``<|endoftext|>`` (id 0), and ``<unk>`` (id 1) for
the character-level tokenizer only; byte-level BPE has no unknown tokens.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from trainables.lm.config import TokenizerConfig
from trainables import paths

CACHE_ENV = "REPROTUNE_TOKENIZER_CACHE"
"""Environment variable naming the tokenizer cache folder."""
EOT, UNK = "<|endoftext|>", "<unk>"


def cache_dir() -> Path:
    """$REPROTUNE_TOKENIZER_CACHE or ``<project>/.cache/tokenizers``."""
    return Path(os.environ.get(CACHE_ENV, paths.cache_dir("tokenizers"))).resolve()


def cache_path(config: TokenizerConfig, text: str, folder: Path | None = None) -> Path:
    """Cache file of the tokenizer ``config`` trains on ``text`` (see module doc)."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return (folder or cache_dir()) / f"{config.algorithm}-{config.vocab_size}-{digest}-tk{tokenizers.__version__}.json"


def _lines(text: str, lines_per_chunk: int = 1000) -> Iterator[str]:
    lines = text.splitlines(keepends=True)
    for start in range(0, len(lines), lines_per_chunk):
        yield "".join(lines[start:start + lines_per_chunk])


def train_tokenizer(config: TokenizerConfig, text: str) -> Tokenizer:
    """Train a fresh tokenizer on ``text`` (no cache). BPE may stop below vocab_size on tiny texts."""
    if config.algorithm == "byte_bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, special_tokens=[EOT], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(vocab_size=config.vocab_size, special_tokens=[EOT, UNK],
                                            min_frequency=0, show_progress=False)
    tokenizer.train_from_iterator(_lines(text), trainer)
    return tokenizer


def build_tokenizer(config: TokenizerConfig, text: str, folder: Path | None = None) -> tuple[Tokenizer, Path, bool]:
    """The tokenizer of ``config`` on ``text``, from the cache or trained and cached.

    Returns:
        (tokenizer, path of its JSON file, whether the cache held it).
    """
    path = cache_path(config, text, folder)
    if path.is_file():
        return Tokenizer.from_file(str(path)), path, True
    tokenizer = train_tokenizer(config, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        handle.write(tokenizer.to_str())
    os.replace(handle.name, path)
    return tokenizer, path, False


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` (no special tokens added)."""
    return tokenizer.encode(text, add_special_tokens=False).ids


def token_stats(ids: Sequence[int], text: str, tokenizer: Tokenizer, num_parameters: int,
                embedding_parameters: int) -> dict[str, float]:
    """``tok/*`` statistics of ``ids`` = the encoding of ``text``.

    Keys: vocab_size (entries actually trained), tokens_per_char, tokens_per_byte (UTF-8),
    unk_rate (share of ids that are <unk>), vocab_used (share of the vocabulary occurring in
    ``ids``), params_per_vocab_entry (model parameters / vocabulary entries) and embedding_share
    (embedding parameters / model parameters).

    Raises:
        ValueError: ``text`` is empty.
    """
    if not text:
        raise ValueError("token_stats needs a non-empty text")
    vocab = tokenizer.get_vocab_size()
    unk = tokenizer.token_to_id(UNK)
    n = max(1, len(ids))
    return {"tok/vocab_size": float(vocab), "tok/tokens_per_char": len(ids) / len(text),
            "tok/tokens_per_byte": len(ids) / len(text.encode("utf-8")),
            "tok/unk_rate": (sum(1 for i in ids if i == unk) / n) if unk is not None else 0.0,
            "tok/vocab_used": len(set(ids)) / vocab, "tok/params_per_vocab_entry": num_parameters / vocab,
            "tok/embedding_share": embedding_parameters / max(1, num_parameters)}
