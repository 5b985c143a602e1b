"""Labels made offline: teacher pseudo-labels, distilled alpha, score calibration."""
