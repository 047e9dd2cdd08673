"""growthcurve: fine-tune, validate, plan and grow — one toolkit and CLI for applied deep-learning teams."""

__version__ = "0.1.0"
