"""Pretraining: the trainer, its compiled steps, the input pipeline and masking, the
example stream's position, evaluation, and the checks a resume makes."""
