"""Jobs: the store (SQLAlchemy + Alembic migrations), the executors (local pool | Celery) and the task body."""
