"""Verdicts: pure functions of trial tables (pandas, scipy): seed replicates, language models, claims."""
