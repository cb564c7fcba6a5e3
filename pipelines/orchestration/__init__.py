"""Orchestration: Airflow at the edge -- task adapters over `pipelines.run`, alerts, the timetable."""
