"""Reference data the package ships: the HIPAA rule tables."""
