"""Storage: every zone of the warehouse, written atomically; snapshot versions, leases, recovery."""
