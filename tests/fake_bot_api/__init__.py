"""A local fake of the Telegram Bot API for end-to-end tests: see server.py."""
from tests.fake_bot_api.server import FakeBotAPI

__all__ = ["FakeBotAPI"]
