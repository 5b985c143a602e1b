"""Matters: per-person trimaps -> alpha (base contract, classical, IndexNet, fast)."""
