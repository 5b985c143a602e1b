"""Weights on disk: model folders, resolution order, the one third-party checkpoint reader."""
