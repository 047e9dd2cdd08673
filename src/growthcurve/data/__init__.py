"""Data readers, validation, label maps and splits."""
