"""Generation health: completions of fixed prompts and what they say about a model.

A low loss can hide a model that only loops (a reported case: validation perplexity 1.036 while
85% of the generations were ``):):):``). Each prompt is completed greedily and by sampling
(temperature, top-k, top-p; Holtzman et al. 2020 for nucleus sampling), and each completion's
generated tokens are measured:

- **repetition ratio**: share of its n-grams (``repetition_n``) that repeat an earlier n-gram of
  the completion, ``1 - distinct / total``;
- **distinct-1, distinct-2**: distinct / total uni- and bigrams (Li et al. 2016, NAACL);
- **unique characters** of the decoded completion;
- **collapsed** (mode collapse), by this rule: with L generated tokens (L >= 4), the completion is
  collapsed when, for period p = 1 or p = 2, at least ``collapse_share`` (default 0.8) of the
  positions i in [p, L) hold the same token as position i - p; that is, it is dominated by a loop
  of one token (``aaaa``) or of two (``):):):``). Shorter completions never count as collapsed.

The collapse rate is the share of collapsed completions (greedy, sampled, and both together).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from tokenizers import Tokenizer
from torch import nn

from trainables.lm.config import GenerationConfig
from trainables.lm.tokenizer import EOT, encode


def derive_prompts(text: str, num_prompts: int, prompt_chars: int) -> list[str]:
    """``num_prompts`` prompts of ``prompt_chars`` characters starting at evenly spaced non-blank lines."""
    starts, position = [], 0
    for line in text.splitlines(keepends=True):
        if len(line.strip()) >= 4:
            starts.append(position)
        position += len(line)
    if not starts:
        return [text[:prompt_chars]] if text else []
    count = min(num_prompts, len(starts))
    chosen = [starts[round(k * (len(starts) - 1) / max(1, count - 1))] for k in range(count)]
    return [text[s:s + prompt_chars] for s in dict.fromkeys(chosen)]


def filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Logits (V,) with -inf outside the top-k tokens and outside the top-p nucleus (0 / 1 disable)."""
    logits = logits.clone()
    if 0 < top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if top_p < 1.0:
        ordered, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(ordered, dim=-1).cumsum(dim=-1)
        outside = cumulative - torch.softmax(ordered, dim=-1) >= top_p  # mass before a token already >= top_p
        logits[order[outside]] = float("-inf")
    return logits


@torch.no_grad()
def complete(model: nn.Module, ids: Sequence[int], max_new_tokens: int, context_length: int,
             sample: Optional[GenerationConfig] = None, generator: Optional[torch.Generator] = None,
             device: str = "cpu") -> list[int]:
    """Generated token ids after ``ids``: greedy when ``sample`` is None, else sampled with its settings."""
    tokens = list(ids)
    for _ in range(max_new_tokens):
        window = torch.tensor([tokens[-context_length:]], dtype=torch.long, device=device)
        logits = model(window)[0, -1].float().cpu()
        if sample is None:
            tokens.append(int(logits.argmax()))
            continue
        probs = torch.softmax(filter_logits(logits / sample.temperature, sample.top_k, sample.top_p), dim=-1)
        tokens.append(int(torch.multinomial(probs, 1, generator=generator)))
    return tokens[len(ids):]


def _ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: Sequence[int], n: int) -> float:
    """Distinct n-grams / n-grams of ``tokens``; NaN when there are none."""
    grams = _ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else math.nan


def repetition_ratio(tokens: Sequence[int], n: int) -> float:
    """Share of n-grams repeating an earlier one: ``1 - distinct_n``; NaN when there are none."""
    return 1.0 - distinct_n(tokens, n)


def is_collapsed(tokens: Sequence[int], share: float = 0.8) -> bool:
    """Whether a completion is dominated by a loop of one or two tokens (rule in the module doc)."""
    if len(tokens) < 4:
        return False
    for period in (1, 2):
        repeats = sum(tokens[i] == tokens[i - period] for i in range(period, len(tokens)))
        if repeats / (len(tokens) - period) >= share:
            return True
    return False


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def generation_health(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[str], config: GenerationConfig,
                      context_length: int, seed: int, device: str = "cpu"
                      ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Complete each prompt greedily and sampled; returns (one row per completion, ``gen/*`` metrics).

    Sampling draws from a generator seeded with ``seed``. Rows: prompt, mode, completion, tokens,
    repetition_ratio, distinct_1, distinct_2, unique_chars, collapsed.
    """
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    eot, rows = tokenizer.token_to_id(EOT), []
    try:
        for prompt in prompts:
            ids = [eot] + encode(tokenizer, prompt)
            for mode, sample in (("greedy", None), ("sampled", config)):
                new = complete(model, ids, config.max_new_tokens, context_length, sample, generator, device)
                text = tokenizer.decode(new)
                rows.append({"prompt": prompt, "mode": mode, "completion": text, "tokens": len(new),
                             "repetition_ratio": repetition_ratio(new, config.repetition_n),
                             "distinct_1": distinct_n(new, 1), "distinct_2": distinct_n(new, 2),
                             "unique_chars": len(set(text)), "collapsed": is_collapsed(new, config.collapse_share)})
    finally:
        model.train(was_training)
    return rows, summarize(rows)


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``gen/*`` means over completion rows, and the collapse rates (all, greedy, sampled)."""
    metrics = {f"gen/{k}": _mean([float(r[k]) for r in rows])
               for k in ("repetition_ratio", "distinct_1", "distinct_2", "unique_chars")}
    metrics["gen/collapse_rate"] = _mean([float(r["collapsed"]) for r in rows])
    for mode in ("greedy", "sampled"):
        metrics[f"gen/collapse_rate_{mode}"] = _mean([float(r["collapsed"]) for r in rows if r["mode"] == mode])
        metrics[f"gen/completions_{mode}"] = float(sum(r["mode"] == mode for r in rows))
    return metrics
