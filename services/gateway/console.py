"""The console: the web pages the gateway serves at ``/`` (files in ``static/``, no build step).

Every script, style and icon comes from the gateway itself — city networks are often closed — and
the Content-Security-Policy lets the pages load nothing from anywhere else, except map tiles from
the tile server the city configures (``map_tile_url``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware

from retina.services.core.settings import GatewaySettings
from retina.services.gateway.auth import Principal, principal

STATIC_DIR = Path(__file__).resolve().parent / "static"
router = APIRouter(tags=["console"])


def content_security_policy(settings: GatewaySettings) -> str:
    """Only the gateway's own scripts, styles, images and connections (plus the tile server's images)."""
    images = "'self' data: blob:"
    if settings.map_tile_url:
        parts = urlsplit(settings.map_tile_url.replace("{", "").replace("}", ""))
        images += f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; media-src 'self' blob:; connect-src 'self'; font-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", request.app.state.csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


@router.get("/console/config", summary="What the console needs to know: map tiles, verification delay")
async def console_config(
    request: Request, _caller: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    settings: GatewaySettings = request.app.state.settings
    return {"map_tile_url": settings.map_tile_url, "verify_seconds": settings.verify_seconds}


def mount_console(app: FastAPI, settings: GatewaySettings) -> None:
    """Serve the console at ``/`` and its files at ``/static``, with the security headers."""
    app.state.csp = content_security_policy(settings)
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    page = (STATIC_DIR / "index.html").read_text()
    # The login page offers single sign-on when it is configured (known before anyone logs in).
    page = page.replace("<body>", f'<body data-sso="{str(bool(settings.oidc_issuer)).lower()}">', 1)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
