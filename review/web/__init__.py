"""The editors' web app and REST API (FastAPI, server-rendered Jinja2 pages, Simplified Chinese UI).

``create_app(settings)`` builds the app; ``piyao serve`` runs it with uvicorn.
"""

from review.web.app import create_app

__all__ = ["create_app"]
