"""Tools beside the pipeline: the order generator and the data dictionary."""
