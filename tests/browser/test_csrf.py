"""Cross-site request forgery in a real Chromium (issue 16, vulnerability 6): the victim
is signed in to the dashboard; a page served from another origin (another port of the
same host: the same site, so the SameSite=Strict cookie travels) auto-submits forms to
/signin, /signout and the cookie-authenticated API. Nothing of the victim's changes,
while the dashboard's own scripts still change things with the same cookie."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db.session import make_engine, make_sessionmaker
from app.security.auth import create_key
from tests.conftest import family_csv, job_spec, make_settings, start_server


class Attacker:
    """A tiny web server on another local port that serves the attack pages."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path, "not here").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("csrf-browser")
    settings = make_settings(root / "data", f"sqlite:///{root / 'auxsel.db'}")
    proc, url = start_server(settings, root / "server.log", worker=False, AUXSEL_AUTH="on")
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    keys = {
        "alice": create_key(sessions, "alice").key,
        "mallory": create_key(sessions, "mallory").key,
    }
    engine.dispose()
    yield {"url": url, **keys}
    proc.stop()


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    server = Attacker()
    yield server
    server.close()


def _form(
    action: str, fields: dict[str, str], enctype: str = "application/x-www-form-urlencoded"
) -> str:
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    return (
        f'<!doctype html><form id="f" method="post" action="{action}" enctype="{enctype}">'
        f"{inputs}</form><script>document.getElementById('f').submit()</script>"
    )


def _plant(action: str) -> str:
    """A multipart upload with a file, sent with the cookie by a no-cors fetch."""
    return (
        "<!doctype html><p id=done></p><script>"
        "const body = new FormData();"
        "body.append('file', new File(['a,b\\n1,2\\n3,4\\n'], 'planted.csv'));"
        "body.append('name', 'planted');"
        f"fetch('{action}', {{method: 'POST', body, mode: 'no-cors', credentials: 'include'}})"
        ".finally(() => { document.getElementById('done').textContent = 'sent'; });"
        "</script>"
    )


def _session(page: Any) -> str:
    return str(next(c["value"] for c in page.context.cookies() if c["name"] == "auxsel_session"))


def test_pages_on_another_origin_cannot_act_with_the_victims_cookie(
    page: Any, target: dict[str, str], attacker: Attacker, tmp_path: Path
):
    url = target["url"]
    bearer = {"Authorization": f"Bearer {target['alice']}"}
    dataset = httpx.post(
        f"{url}/api/v1/datasets",
        files={"file": ("family.csv", family_csv(n_rows=200))},
        data={"name": "alice-data"},
        headers=bearer,
    ).json()["id"]
    job_id = httpx.post(f"{url}/api/v1/jobs", json=job_spec(dataset), headers=bearer).json()["id"]

    # Alice signs in to the dashboard.
    page.goto(f"{url}/signin")
    page.fill("#key", target["alice"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    session = _session(page)

    attacker.pages.update(
        {
            "/login.html": _form(f"{url}/signin", {"key": target["mallory"], "next": "/"}),
            "/cancel.html": _form(f"{url}/api/v1/jobs/{job_id}/cancel", {"x": "1"}),
            "/signout.html": _form(f"{url}/signout", {"csrf_token": "guess"}),
            "/plant.html": _plant(f"{url}/api/v1/datasets"),
        }
    )
    for name, path in (
        ("login", "/signin"),
        ("cancel", f"/api/v1/jobs/{job_id}/cancel"),
        ("signout", "/signout"),
    ):
        with page.expect_response(
            lambda r, path=path: r.url == f"{url}{path}" and r.request.method == "POST"
        ) as answer:
            page.goto(f"{attacker.url}/{name}.html")
        assert answer.value.status == 403, (name, answer.value.text())
        assert _session(page) == session, f"{name} changed the victim's cookie"
    with page.expect_response(lambda r: r.url == f"{url}/api/v1/datasets") as planted:
        page.goto(f"{attacker.url}/plant.html")
    page.wait_for_selector("#done:has-text('sent')")
    assert planted.value.status == 403

    # Alice is still herself, her job still queued, nothing planted.
    names = {d["name"] for d in httpx.get(f"{url}/api/v1/datasets", headers=bearer).json()["items"]}
    assert names == {"alice-data"}
    job = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=bearer).json()
    assert job["status"] == "queued"
    page.goto(f"{url}/jobs/{job_id}")
    assert page.url == f"{url}/jobs/{job_id}"  # still signed in, as Alice (her job shows)

    # The dashboard's own script cancels with the same cookie (it sends the page's token).
    page.click("#cancel")
    page.wait_for_selector("#job h1 [data-field=status]:has-text('canceled')")
    assert httpx.get(f"{url}/api/v1/jobs/{job_id}", headers=bearer).json()["status"] == "canceled"
    # And its own sign-out form works.
    page.click("text=Sign out")
    page.wait_for_url(f"{url}/signin")
    assert httpx.get(f"{url}/api/v1/jobs", cookies={"auxsel_session": session}).status_code == 401


def test_the_docs_page_works_from_the_vendored_swagger_ui(page: Any, target: dict[str, str]):
    url = target["url"]
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{url}/docs")
    assert page.url.startswith(f"{url}/signin?next=%2Fdocs")
    page.fill("#key", target["alice"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/docs")
    page.locator(".opblock-summary-path", has_text="/api/v1/jobs").first.wait_for()
    # "Try it out" on a change goes through with the sign-in cookie: Swagger UI sends the
    # page's CSRF token (a 404 for a made-up id, not a 403).
    path = page.locator(".opblock-summary-path", has_text="/cancel")
    block = page.locator(".opblock-post", has=path).first
    block.locator(".opblock-summary").click()
    block.locator("button.try-out__btn").click()
    block.locator("input[placeholder='job_id']").fill("job_missing")
    with page.expect_response(lambda r: r.url.endswith("/job_missing/cancel")) as answer:
        block.locator("button.execute").click()
    assert answer.value.status == 404
    assert answer.value.request.headers.get("x-csrf-token")
    assert all(u.startswith(url) for u in requested), [
        u for u in requested if not u.startswith(url)
    ]
