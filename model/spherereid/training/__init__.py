"""Training: one epoch and feature extraction (loop), fit with exact resume (trainer), checkpoints and the
learning-rate schedule."""
