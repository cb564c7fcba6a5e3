"""Validate: parse strictly, deduplicate, run the contract's Great Expectations suite, gate, quarantine;
and check the built marts against their contracts before publish (`mart_checks.py`)."""
