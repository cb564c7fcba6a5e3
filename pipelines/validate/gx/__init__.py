"""Great Expectations: the suite generated from a contract, and the runner that reports per rule."""
