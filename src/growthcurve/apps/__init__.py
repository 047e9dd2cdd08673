"""Ready-to-use application scenarios built on the model loop (recommender, ...)."""
