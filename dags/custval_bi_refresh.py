"""
### custval BI refresh

An example downstream DAG: it runs whenever `custval_nightly` has published all of its
marts (each mart is an Airflow Asset) and refreshes what BI tools read. Here that is the
warehouse's `latest/` folder -- the newest snapshot's KPIs and the path of each table's
newest partition; a real deployment would refresh a dashboard or an extract instead.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import AssetAll, dag, task

from pipelines.orchestration.tasks import mart_assets

MART_ASSETS = mart_assets(os.environ.get("CUSTVAL_WAREHOUSE", "/opt/custval/warehouse"))


@dag(
    dag_id="custval_bi_refresh",
    schedule=AssetAll(*MART_ASSETS),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["custval", "example"],
    doc_md=__doc__,
)
def custval_bi_refresh():
    @task
    def refresh_latest(triggering_asset_events=None) -> dict:
        """
        #### Refresh latest
        Write `DIR/latest/kpis.json` and `DIR/latest/tables.json` for the warehouse and
        snapshot named by the triggering asset events.
        """
        from pipelines.publish.latest import refresh_latest as refresh

        extras = [e.extra for events in (triggering_asset_events or {}).values() for e in events]
        return refresh(extras)

    refresh_latest()


custval_bi_refresh()
