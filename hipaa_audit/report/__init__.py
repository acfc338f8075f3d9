"""Risk-analysis and BAA-evidence reports."""
