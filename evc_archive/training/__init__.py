"""Training of the default models: data sets, synthetic video, training loops. Used by jobs/train_*.py."""
