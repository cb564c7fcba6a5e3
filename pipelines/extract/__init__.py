"""Extract: find a source's files, read them exactly as written, land them in the raw zone."""
