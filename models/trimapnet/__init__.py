"""TrimapNet: SOLOv2 with a 3-class trimap per instance (model.py composes the parts)."""
