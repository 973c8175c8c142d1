"""Training: the paper's SGD rule, one training loop for every strategy, checkpoints and presets."""
