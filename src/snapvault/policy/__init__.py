"""Policies: what to back up, when, how, and how long to keep it.

Nouns
-----
Policy
    A named, validated backup policy (sources, excludes, schedule, backup type, retention,
    hooks, compression, verification); stored in the repository as a policy record.
Run
    One execution of a policy: its backup type decided from earlier snapshots, hooks around
    it, verification after it, and a run record of its outcome.
Retention strategy
    Decides which snapshots to keep, with a reason for each (``GFS``, ``KeepLast``,
    ``KeepWithin``, ``KeepTags``, ``Union``, or a registered one); ``forget`` applies it.
Cron expression
    When a policy is due; evaluated in the policy's time zone, with ``now`` a parameter.
Hook
    A Python callable or a stored shell command run before or after a backup.
"""
