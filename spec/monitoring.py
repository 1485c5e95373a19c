"""Monitoring: where alerts reach the owner, and the dead-man's switch that says when they cannot.

The rules, scrape targets and Alertmanager's configuration are made from the spec in
`plan/monitoring.py`; this is only what the owner chooses.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from spec.base import Model, refuse

# The receiver's secrets, by kind (a webhook URL may carry a token; Pushover has two keys).
WEBHOOK_URL = "alertWebhookUrl"
PUSHOVER_USER_KEY = "pushoverUserKey"
PUSHOVER_TOKEN = "pushoverToken"
SMTP_PASSWORD = "smtpPassword"
# The dead-man's switch's ping URL (healthchecks.io and the like): it holds the check's ID.
WATCHDOG_URL = "watchdogUrl"

Email = Annotated[str, Field(pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")]


class Receiver(Model):
    """Who gets the alerts: a webhook (ntfy, Gotify, a chat bridge), Pushover, or e-mail."""

    kind: Literal["webhook", "pushover", "email"]
    # email: the address, and the relay that sends it (host:port, STARTTLS) with its login.
    to: Email | None = None
    smarthost: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+:\d{1,5}$")] | None = None
    sender: Email | None = None
    username: Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,100}$")] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Receiver:
        if self.kind == "email":
            missing = [f for f in ("to", "smarthost", "sender", "username") if getattr(self, f) is None]
            if missing:
                refuse([f"kind email needs {', '.join(missing)}"])
        elif any(getattr(self, f) is not None for f in ("to", "smarthost", "sender", "username")):
            refuse([f"to, smarthost, sender and username are for kind email, not {self.kind}"])
        return self

    def secrets(self) -> tuple[str, ...]:
        return {
            "webhook": (WEBHOOK_URL,),
            "pushover": (PUSHOVER_USER_KEY, PUSHOVER_TOKEN),
            "email": (SMTP_PASSWORD,),
        }[self.kind]


class Monitoring(Model):
    receiver: Receiver
    # How long metrics are kept (VictoriaMetrics' retention).
    retention_days: Annotated[int, Field(ge=7, le=730)] = 90
    # A node's draw is judged over this window before the power alert fires: a backup or an
    # update may run hot for a few minutes without the budget being wrong.
    power_alert_minutes: Annotated[int, Field(ge=5, le=240)] = 30
