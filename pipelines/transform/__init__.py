"""Transform: the snapshot's orders (Polars), privacy, and the DuckDB SQL models that build the marts."""
