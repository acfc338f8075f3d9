"""Permission drift: who can reach PHI, by which path, and what changed."""
