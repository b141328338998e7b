"""The Metrana server (``metrana serve``): REST and protobuf ingestion over the storage layer."""

from ..api._routes import DEFAULT_MAX_BODY_BYTES
from ._app import create_app
from ._serve import ensure_api_key, serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "ensure_api_key", "serve"]
