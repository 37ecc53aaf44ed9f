"""Data: sources, tabular columns, fingerprints, and the tf.data pipelines that feed the model."""
