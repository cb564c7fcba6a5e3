"""Run: the one lifecycle of a run, for the CLI and Airflow alike, and its measurements."""
