"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Daphne implements no ASGI lifespan, so the embedded run executor is started from the Twisted
reactor that daphne installs, once it is running (see runs.engine.executor.start_with_reactor).
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

# Channels code imports models: only after get_asgi_application() has set Django up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from core.body_limit import BodyLimitMiddleware  # noqa: E402
from core.websocket_origin import SameOriginValidator  # noqa: E402
from orchestrator.routing import websocket_urlpatterns  # noqa: E402
from runs.engine.executor import start_with_reactor  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

start_with_reactor()
