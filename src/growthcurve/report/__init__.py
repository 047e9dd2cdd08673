"""The growth report: one self-contained HTML page over the registry, the store, goals and the team."""
