"""Build models from a config: Hugging Face encoders (full or PEFT) and non-pretrained baselines."""
