"""The engine: train, evaluate and predict, with resume, progress and reports."""
