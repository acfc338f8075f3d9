"""hipaa-audit: audit an estate that holds medical images for HIPAA Security Rule risks."""

__version__ = "0.1.0"
