"""Who may see the workbench, and the pages' frame.

Any role signs in (services/progress/signin.py); `gate` answers a request without a session or
bearer token with the sign-in page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from services.progress import session_cookie as cookie
from services.progress.templating import templates
from services.shared.auth import AuthError, Principal

AREA = "/workbench"


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    for key, default in (("user", None), ("notes", []), ("names", {})):
        context.setdefault(key, default)
    context.setdefault("csrf", getattr(request.state, "csrf", ""))
    return templates.TemplateResponse(request, f"workbench/{name}", context, status_code=status)


async def gate(request: Request) -> Principal | Response:
    """Who is asking, or the sign-in page to send instead."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"{AREA}/login?{urlencode({'next': cookie.safe_next(target, AREA)})}"
    try:
        who = await cookie.identify(request)
    except AuthError:
        return cookie.signed_out(f"{login}&expired=1")
    if who is None:
        return RedirectResponse(login, status_code=303)
    return who


def refused(request: Request, who: Principal | None, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", status, user=who, title=title, message=message)
