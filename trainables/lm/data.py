"""Everything a run needs before its model: split text, tokenizer, token ids, the split audit.

``prepare`` is deterministic in the ``data`` and ``tokenizer`` sections only (never the training
seed), so seed replicates share their split and tokenizer, and a job can call it once to fill
the tokenizer cache before its trials start.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from trainables.lm.audits import split_overlap
from trainables.lm.config import ConfigError, LMRun
from trainables.lm.corpus import CorpusSplit, split_corpus
from trainables.lm.evaluate import text_sample, unigram_score
from trainables.lm.model import CausalLM
from trainables.lm.tokenizer import EOT, build_tokenizer, encode, token_stats


@dataclass(frozen=True)
class Prepared:
    """A run's data: the split, its tokenizer and the token ids of what is trained and scored."""

    split: CorpusSplit
    """Training and validation text."""
    tokenizer: Tokenizer
    """Trained on the training split (plus the training splits of ``tokenizer.extra_corpora``)."""
    tokenizer_path: Path
    """Its JSON file in the cache."""
    cache_hit: bool
    """Whether the cache already held it."""
    train_ids: torch.Tensor
    """Token ids of the whole training split, (N,) long."""
    val_ids: torch.Tensor
    """``<|endoftext|>`` + ids of the scored validation text (``eval_bytes`` in ``eval_pieces`` spread chunks)."""
    val_text: str
    """The scored validation text."""
    train_eval_ids: torch.Tensor
    """``<|endoftext|>`` + ids of training text sampled the same way (for the generalization gap)."""
    train_eval_bytes: int
    """UTF-8 bytes of that training text."""
    overlap: float
    """Share of long validation lines found in training text (``audits.split_overlap``)."""
    unigram_bits_per_byte: float
    """Bits per byte of the scored validation text under a unigram model of the training ids."""

    @property
    def val_bytes(self) -> int:
        return len(self.val_text.encode("utf-8"))

    def record(self, model: CausalLM) -> dict[str, float | str]:
        """``data/*`` and ``tok/*`` entries for a report (sizes, checksums, tokenizer statistics)."""
        ids = self.val_ids[1:].tolist()
        stats = token_stats(ids, self.val_text, self.tokenizer, model.num_parameters(), model.embedding_parameters())
        return {**self.split.record(), "data/val_eval_bytes": float(self.val_bytes), **stats,
                "tok/cache_hit": float(self.cache_hit), "tok/train_tokens": float(self.train_ids.numel()),
                "model/parameters": float(model.num_parameters())}


def tokenizer_text(run: LMRun, split: CorpusSplit | None = None) -> str:
    """Training text of the run's tokenizer: the training splits of the run's corpus and of
    ``tokenizer.extra_corpora``, concatenated in sorted order of corpus name (so runs sharing a
    tokenizer train it on the same bytes)."""
    names = sorted({run.data.corpus, *run.tokenizer.extra_corpora})
    parts = [split.train if split is not None and name == run.data.corpus
             else split_corpus(dataclasses.replace(run.data, corpus=name)).train for name in names]
    return "".join(parts)


def prepare(run: LMRun, cache: Path | None = None) -> Prepared:
    """Split, build or load the tokenizer, encode.

    Args:
        run: the ``data``, ``tokenizer``, ``model.context_length`` and ``train.eval_bytes`` matter.
        cache: tokenizer cache folder (default ``trainables.lm.tokenizer.cache_dir()``).

    Raises:
        FileNotFoundError: a corpus is missing.
        ConfigError: the training split is shorter than one window of context_length + 1 tokens.
    """
    split = split_corpus(run.data)
    tokenizer, path, hit = build_tokenizer(run.tokenizer, tokenizer_text(run, split), cache)
    eot = tokenizer.token_to_id(EOT)
    train_ids = torch.tensor(encode(tokenizer, split.train), dtype=torch.long)
    if train_ids.numel() < run.model.context_length + 2:
        raise ConfigError(f"training split has {train_ids.numel()} tokens, fewer than a window of "
                          f"context_length={run.model.context_length} + 1")
    val_text = text_sample(split.val, run.train.eval_bytes, run.train.eval_pieces)
    train_text = text_sample(split.train, run.train.eval_bytes, run.train.eval_pieces)
    val_ids = [eot] + encode(tokenizer, val_text)
    if len(val_ids) < 2:
        raise ConfigError(f"validation text of corpus {run.data.corpus!r} is empty within eval_bytes")
    unigram = unigram_score(train_ids.tolist(), val_ids, tokenizer.get_vocab_size(), len(val_text.encode("utf-8")))
    return Prepared(split, tokenizer, path, hit, train_ids, torch.tensor(val_ids), val_text,
                    torch.tensor([eot] + encode(tokenizer, train_text)), len(train_text.encode("utf-8")),
                    split_overlap(split.train, split.val, run.audit.overlap_min_chars), unigram.bits_per_byte)
