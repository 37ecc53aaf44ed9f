"""Hyperparameter sweeps on Optuna: the search space, the study, its trials and report."""
