"""The model: Keras names resolved, the Sequential built and checked, callbacks, saved formats."""
