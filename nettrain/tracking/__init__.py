"""Logging runs and sweeps to an experiment tracker (MLflow): the store (``store``), one run's
MLflow run (``logger``), a sweep's parent and child runs (``sweeps``). MLflow is imported only
when a config has ``tracking:`` or a command reads a store."""
