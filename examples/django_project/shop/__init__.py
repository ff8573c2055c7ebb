"""The example Django project: orders whose confirmations are sent by rexecutor tasks."""
