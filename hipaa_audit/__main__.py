"""``python -m hipaa_audit``."""

from hipaa_audit.cli import main

main()
