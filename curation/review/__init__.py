"""Human review: append-only decisions, undo, queues and statistics."""
