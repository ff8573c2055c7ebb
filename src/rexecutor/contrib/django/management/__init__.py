"""Management commands of the rexecutor Django app."""
