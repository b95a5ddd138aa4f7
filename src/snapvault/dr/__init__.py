"""Disaster recovery: :class:`~snapvault.dr.plan.DRPlan` and what its runs record.

``model`` and ``records`` (the plan's fields, the stored records) sit below the engine, which
reads failover records to refuse writes to a stale primary; ``plan``, ``drill``, ``sites``,
``status`` and ``report`` use the engine's layer and sit above it.
"""
