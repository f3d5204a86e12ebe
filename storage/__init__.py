"""Storage: SQLAlchemy 2 async tables, repositories and the unit of work (SQLite and PostgreSQL)."""
