"""Logging runs and sweeps to an experiment tracker (MLflow): not built yet."""
