"""The Airflow plugin that registers custval's timetable (found through the package's entry point)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pipelines.orchestration.timetable import SettledDailyTimetable


class CustvalPlugin(AirflowPlugin):
    name = "custval"
    timetables = [SettledDailyTimetable]
