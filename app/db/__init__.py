"""Storage: engine and sessions, ORM models, migrations, retries, repositories (the only SQL)."""
