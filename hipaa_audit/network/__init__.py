"""The network scanner: TLS, certificates and plaintext PHI transport on network endpoints."""
