"""Security headers on every HTTP response of the app (a plain ASGI middleware, no framework needed).

No `X-Frame-Options: DENY` and no script CSP: a Hugging Face Space shows the app inside an iframe on huggingface.co,
and Gradio's page relies on inline scripts. `frame-ancestors` limits who may embed it instead (FRAME_ANCESTORS env).
"""

from __future__ import annotations

import os

DEFAULT_FRAME_ANCESTORS = "'self' https://huggingface.co https://*.hf.space"


def security_headers(frame_ancestors: str | None = None) -> list[tuple[bytes, bytes]]:
    ancestors = frame_ancestors or os.environ.get("FRAME_ANCESTORS") or DEFAULT_FRAME_ANCESTORS
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"permissions-policy", b"camera=(self), microphone=(), geolocation=(), payment=(), usb=()"),
        (b"content-security-policy", f"frame-ancestors {ancestors}; object-src 'none'; base-uri 'self'".encode()),
    ]


class SecurityHeadersMiddleware:
    """Adds `security_headers()` to every HTTP response (replacing any header of the same name)."""

    def __init__(self, app, frame_ancestors: str | None = None):
        self.app = app
        self.headers = security_headers(frame_ancestors)
        self.names = {name for name, _ in self.headers}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in self.names]
                message = {**message, "headers": headers + self.headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)
