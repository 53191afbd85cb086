"""Alembic migrations of the job store (run programmatically by services.jobs.migrate)."""
