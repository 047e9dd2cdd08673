"""The training loop on accelerate: batching, collation, checkpoints, resume."""
