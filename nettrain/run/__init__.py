"""The run directory: its files, lock, record (run.json) and checkpoints."""
