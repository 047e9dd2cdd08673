"""Growth operations: hyperparameter search and retraining from served feedback (above training and the store)."""
