"""Scheduled jobs (APScheduler): thin, restart-safe wrappers that call core use cases."""
