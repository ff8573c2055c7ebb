"""rexecutor: typed, asyncio-first job execution with in-memory, SQLite and PostgreSQL backends."""
