"""The HTTP API: ``create_app(settings)`` builds it."""

from infinitetalk.api.app import create_app

__all__ = ["create_app"]
