"""``rexecutor_worker``."""
