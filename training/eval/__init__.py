"""Evaluation: vidmatte-eval, its folder readers, the baseline comparison, plots."""
