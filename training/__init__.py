"""Pseudo-trimaps from teachers, datasets, losses, the trainer, evaluation metrics and
publishing weights (docs/architecture.md)."""
