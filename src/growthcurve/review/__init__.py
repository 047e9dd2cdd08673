"""The review queue: people label served traffic (active learning), agreement, and unbiased accuracy estimates."""
