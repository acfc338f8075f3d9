"""The audit-log analyser: parsers into one normalised table, detectors, Sigma rules, integrity."""
