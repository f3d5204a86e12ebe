"""The composition root (app/bootstrap.py): the store's services built from the settings, in one place."""
from app.bootstrap import App

__all__ = ["App"]
