"""Failure alerts: a clear one-paragraph summary in the log, and a webhook post when configured.

A degraded run (every table published, a model could not be fitted) takes the same path: the
tables are there for BI, but someone should look at the model before the next night.

The webhook URL comes from the environment variable CUSTVAL_ALERT_WEBHOOK or the Airflow
Variable `custval_alert_webhook`; it receives a JSON body (Slack-compatible `text`, plus the
fields). A failing webhook is logged, never raised: the alert must not hide the failure.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

log = logging.getLogger(__name__)
WEBHOOK_ENV = "CUSTVAL_ALERT_WEBHOOK"
WEBHOOK_VARIABLE = "custval_alert_webhook"


def failure_summary(fields: dict[str, Any]) -> str:
    error = " ".join(str(fields.get("error") or "unknown error").split())[:500]
    where = f"task {fields.get('task_id')}" if fields.get("task_id") else "the run"
    tries = (
        f" (try {fields['try_number']} of {fields['max_tries']})"
        if fields.get("try_number")
        else ""
    )
    snapshot = f" snapshot {fields['snapshot_date']}:" if fields.get("snapshot_date") else ""
    text = f"custval {fields.get('dag_id', '')} run {fields.get('run_id', '?')}{snapshot} {where} failed{tries}: {error}"
    if fields.get("log_url"):
        text += f" -- log: {fields['log_url']}"
    return text


def webhook_url() -> str | None:
    url = os.environ.get(WEBHOOK_ENV)
    if url:
        return url
    try:
        from airflow.sdk import Variable

        return Variable.get(WEBHOOK_VARIABLE, default=None)
    except Exception:  # noqa: BLE001 - no Airflow, or no such variable
        return None


def notify_degraded(manifest: dict[str, Any], url: str | None = None) -> str:
    """A published but degraded snapshot: alert like a failure, saying what was published."""
    failures = "; ".join(manifest.get("model_failures") or []) or "a model could not be fitted"
    text = (
        f"custval snapshot {manifest.get('snapshot_date')} published DEGRADED (run "
        f"{manifest.get('run_id')}): every table is published, the predictions are not: "
        f"{' '.join(failures.split())[:500]} -- see model_fit and {manifest.get('manifest_path')}"
    )
    return _post(text, {"status": "degraded", **manifest}, url, level=logging.WARNING)


def notify_failure(fields: dict[str, Any], url: str | None = None) -> str:
    """Log the summary and post it to the webhook (if any); returns the summary."""
    return _post(failure_summary(fields), fields, url, level=logging.ERROR)


def _post(text: str, fields: dict[str, Any], url: str | None, level: int) -> str:
    log.log(level, text)
    url = url or webhook_url()
    if url:
        keep = {k: v for k, v in fields.items() if not isinstance(v, (dict, list))}
        body = json.dumps({"text": text, **{k: str(v) for k, v in keep.items()}}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except Exception as exc:  # noqa: BLE001
            log.warning("could not post the failure alert to %s: %s", url, exc)
    return text
