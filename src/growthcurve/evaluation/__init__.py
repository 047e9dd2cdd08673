"""Metrics and reports: scikit-learn classification reports, confusion matrices, curves."""
