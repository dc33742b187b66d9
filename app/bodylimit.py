"""A cap on request bodies other than multipart uploads (JSON job specs and the like),
enforced while the body streams in, so a huge or endless body (chunked, no
Content-Length) is refused with 413 before the server buffers it. Uploads have their
own, larger limit (AUXSEL_MAX_UPLOAD_MB), checked by the upload route as it streams."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ProblemError, problem_response

MAX_JSON_BYTES = 1 << 20  # 1 MiB: a job spec with 500 candidates is about 50 KiB


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        "Request body too large",
        f"The request body is larger than {limit // 1024} KiB.",
        type_="body-too-large",
    )


class _BodyTooLarge(HTTPException):
    """Raised from receive(); an HTTPException so that FastAPI's body reading passes it
    on (it turns other errors into a 400) and the app's handler renders a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit).detail)


class BodyLimitMiddleware:
    """Pure ASGI middleware (no buffering of its own)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_JSON_BYTES, exempt: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.exempt:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            # File uploads: the upload route streams them under its own, larger limit.
            await self.app(scope, receive, send)
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await problem_response(_too_large(self.max_bytes))(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await problem_response(_too_large(self.max_bytes))(scope, receive, send)
