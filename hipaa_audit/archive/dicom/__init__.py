"""hipaa-audit."""
