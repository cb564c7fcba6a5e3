"""Great Expectations: the suites generated from contracts (the input's, the published tables'),
and the runner that reports per rule."""
