"""Telegram storefront: library-neutral logic here (common.py), one thin adapter per library."""
