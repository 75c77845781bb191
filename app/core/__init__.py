"""Cross-cutting pieces: errors, database, Redis, security, rate limits, queue."""
