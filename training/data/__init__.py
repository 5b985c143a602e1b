"""Training data: pseudo-labelled triplets, matting composites, augmentation, flow cache."""
