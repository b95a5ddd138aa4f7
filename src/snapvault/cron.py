"""Public: the cron-expression helper (validation, fire times, due checks; no scheduler).

A facade over :mod:`snapvault.policy.cron`, where it is implemented; import from here.
"""

from snapvault.policy.cron import Scheduled, is_due, next_runs, previous_run, validate

__all__ = ["Scheduled", "is_due", "next_runs", "previous_run", "validate"]
