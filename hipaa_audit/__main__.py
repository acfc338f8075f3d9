"""``python -m hipaa_audit``."""

from hipaa_audit.cli import main

if __name__ == "__main__":  # worker processes import this module without running the CLI
    main()
