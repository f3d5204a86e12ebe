"""Adapters: translate platform updates into (identity, intent) and Screens into platform messages."""
