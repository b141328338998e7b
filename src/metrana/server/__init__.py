"""The Metrana server (``metrana serve``): REST and protobuf ingestion over the storage layer."""

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._serve import ensure_api_key, serve

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "ensure_api_key", "serve"]
