"""The nightly schedule: each data interval is one UTC calendar day; its run starts at 02:00.

Airflow's CronDataIntervalTimetable("0 2 * * *") would make the intervals run from 02:00 to
02:00, so the run for day D would carry the logical date D 02:00 -- and
`airflow backfill create --from-date D1 --to-date D2`, which takes the runs whose logical
dates lie in [D1 00:00, D2 00:00], would stop a day short. Here the interval of day D is
[D 00:00, D+1 00:00) UTC (logical date D 00:00, so the backfill yields D1..D2), and the run
becomes due `settle_hours` after the day ends (02:00 UTC on D+1), giving late files and
commits two hours to land. Registered with Airflow by the `custval` plugin (an entry point).

A run triggered by hand covers the day its logical date names when that date is a midnight
(`airflow dags trigger -l 2025-12-30` builds snapshot 2025-12-30), and otherwise the last whole
day before it: a UI trigger, whose logical date is "now", builds the day that has just ended,
never a day still going on.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable


class SettledDailyTimetable(CronDataIntervalTimetable):
    def __init__(self, settle_hours: int = 2) -> None:
        super().__init__("0 0 * * *", "UTC")
        self.settle_hours = settle_hours
        self.description = f"Daily: the UTC day, run at {settle_hours:02d}:00 UTC the day after"

    @property
    def summary(self) -> str:
        return f"daily, {self.settle_hours:02d}:00 UTC"

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        info = super().next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )
        if info is None:
            return None
        return info._replace(run_after=info.run_after + timedelta(hours=self.settle_hours))

    def infer_manual_data_interval(self, *, run_after: Any) -> DataInterval:
        start = run_after.replace(hour=0, minute=0, second=0, microsecond=0)
        if start != run_after:  # a moment within a day: the day before, which has ended
            start = start - timedelta(days=1)
        return DataInterval(start=start, end=start + timedelta(days=1))

    def serialize(self) -> dict[str, Any]:
        return {"settle_hours": self.settle_hours}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> SettledDailyTimetable:
        return cls(int(data.get("settle_hours", 2)))
