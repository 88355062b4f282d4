"""Entry point for ASGI servers: ``uvicorn api.main:app``."""

from api.app import create_app
from shared.logging import configure_logging
from shared.settings import get_settings

settings = get_settings()
configure_logging(level=settings.log_level, fmt=settings.log_format)
app = create_app(settings)
