"""The cross-lingual comparison reads its language and tokenizer scope from the verdict table's columns."""

import json

import pandas as pd

from tune_jobs.crosslingual import comparison_table


def test_one_row_per_language_and_scope():
    rows = [{"name": f"v2048-d128-lr0.003-{lang}" + ("-shared" if extra else ""), "data/corpus": lang,
             "tokenizer/extra_corpora": json.dumps(extra), "bpb_mean": bpb, "bpb_std": 0.01, "seeds_run": 1,
             "tok/tokens_per_char": 0.3, "tok/tokens_per_byte": 0.29, "tok/vocab_used": 0.9, "val/loss": 2.0,
             "collapse_rate_sampled": 0.0, "verdict": "INCONCLUSIVE", "audit_flags": ""}
            for lang, extra, bpb in (("fr", ["en", "fr"], 2.4), ("en", [], 2.1), ("en", ["en", "fr"], 2.2))]
    table = comparison_table(pd.DataFrame(rows))
    assert table[["language", "scope", "bpb_mean"]].values.tolist() == [
        ["en", "per-language", 2.1], ["en", "shared", 2.2], ["fr", "shared", 2.4]]
