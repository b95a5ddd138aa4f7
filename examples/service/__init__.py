"""An HTTP service that embeds snapvault through its public API only (``import snapvault``).

Policies, backup and restore jobs with live progress, snapshots, downloads, retention and DR
over a small authenticated API; see this folder's README.md. ``create_app(settings)`` in
:mod:`examples.service.app` builds the FastAPI application.
"""
