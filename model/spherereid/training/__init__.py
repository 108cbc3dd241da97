"""Training: the step and its epoch statistics (step), the optimizer (optim) and learning-rate schedule
(schedule), one epoch (loop), the resume key and state (resume), checkpoints, several processes
(distributed) and fit with exact resume (trainer)."""
