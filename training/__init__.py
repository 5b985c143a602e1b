"""Pseudo-trimaps from teachers, datasets, losses, the trainer, evaluation metrics and
publishing weights (DESIGN.md)."""
