"""``openfer serve``: the REST service (``[serve]`` extra: FastAPI and uvicorn). See :mod:`.app`."""

from .app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]
