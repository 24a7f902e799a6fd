"""One record per trainable (``runtime.trial.Trial``): its Tune body, its trial-table measure, its verdict rule.

A new trainable is one file in ``trainables/`` and one file here.
"""
