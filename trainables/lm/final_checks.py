"""What follows a language model's last evaluation: generation health, the ablation of each
component (``trainables.lm.ablation``), the jump step and the audits (``trainables.lm.audits``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from trainables import diagnostics
from trainables.lm import ablation, audits
from trainables.lm.config import LMRun
from trainables.lm.data import Prepared
from trainables.lm.generation import derive_prompts, generation_health
from trainables.lm.model import CausalLM

if TYPE_CHECKING:  # the result type only: train imports this module
    from trainables.lm.train import LMResult


def final_checks(model: CausalLM, data: Prepared, run: LMRun, result: LMResult, last: dict[str, Any]
                 ) -> dict[str, Any]:
    """Generation health, ablations, jump step and audits after the last evaluation ``last`` (fills ``result``)."""
    gen = run.generation
    prompts = list(gen.prompts) or derive_prompts(data.split.val, gen.num_prompts, gen.prompt_chars)
    rows, gen_metrics = generation_health(model, data.tokenizer, prompts, gen, run.model.context_length,
                                          run.train.seed, run.train.device)
    ablations, ablated_rows = ablation.ablation_audit(model, data, run, last["val/bits_per_byte"], prompts)
    result.completions = ablation.labelled(rows, "none") + ablated_rows
    history = result.history + [last]
    steps = [h["step"] for h in history]
    val = [h["val/bits_per_byte"] for h in history]
    train_bpb = [h["train_eval/bits_per_byte"] for h in history]
    measured = {"causal_leak": audits.causal_leak(model, data.tokenizer.get_vocab_size(), run.model.context_length,
                                                  run.train.seed),
                "split_overlap": data.overlap,
                "val_better": float(audits.val_always_better(train_bpb, val, run.audit.val_better_margin)),
                "val_perplexity": last["val/perplexity"], "val_bits_per_byte": last["val/bits_per_byte"],
                "unigram_bits_per_byte": data.unigram_bits_per_byte,
                "collapse_rate_sampled": gen_metrics["gen/collapse_rate_sampled"], **ablations,
                **{k: v for k, v in last.items() if k.startswith("diag/gate/")}}
    result.flags = audits.audit_flags(measured, run.audit)
    jump = diagnostics.jump_step(steps, val, higher_is_better=False)
    return {**gen_metrics, **ablations, "diag/jump_step": math.nan if jump is None else float(jump),
            "val/unigram_bits_per_byte": data.unigram_bits_per_byte,
            "val/best_bits_per_byte": min(val), "audit/causal_leak_max_change": measured["causal_leak"],
            **{f"audit/{name}": float(name in result.flags) for name in audits.FLAGS},
            "audit/flags": float(len(result.flags)), "audit_reasons": "; ".join(
                f"{k}: {v}" for k, v in result.flags.items())}
