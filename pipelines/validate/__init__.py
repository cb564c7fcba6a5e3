"""Validate: parse strictly, deduplicate, run the contract's Great Expectations suite, gate, quarantine."""
