"""Round 2 (issue 16): login CSRF, cross-origin changes through the sign-in cookie,
forced sign-out, the cookie's content, /tmp fill through POST /signin, the docs'
exposure, and the API's caching/sniffing headers and links. Every attack runs against a
real `auxsel serve` with API keys on, as the outside tester ran it."""

from __future__ import annotations

import socket
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from app.db.models import WebSession, utcnow
from app.db.session import make_engine, make_sessionmaker, write_transaction
from app.main import create_app
from app.security.auth import create_key, revoke_key
from app.security.sessions import COOKIE, csrf_token
from tests.conftest import family_csv, job_spec, make_settings, serve_with_key, start_server


@dataclass
class Server:
    url: str
    alice: str  # the victim's key
    mallory: str  # the attacker's own, valid key
    db_url: str
    tmp: Path
    pid: int

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.url, "Sec-Fetch-Site": "same-origin"}

    def attacker(self, port: int = 1) -> dict[str, str]:
        """Headers Chromium sends for a form on another port of the same host."""
        host = urlsplit(self.url).hostname
        return {"Origin": f"http://{host}:{port}", "Sec-Fetch-Site": "same-site"}

    def bearer(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Keys on, no worker (submitted jobs stay queued), its own TMPDIR to watch."""
    root = tmp_path_factory.mktemp("csrf")
    tmp = root / "tmp"
    tmp.mkdir()
    settings = make_settings(root / "data", f"sqlite:///{root / 'auxsel.db'}")
    proc, url = start_server(
        settings, root / "server.log", worker=False, AUXSEL_AUTH="on", TMPDIR=str(tmp)
    )
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    alice, mallory = create_key(sessions, "alice").key, create_key(sessions, "mallory").key
    engine.dispose()
    yield Server(url, alice, mallory, settings.resolved_database_url, tmp, proc.pid)
    proc.stop()


def _sign_in(server: Server, key: str) -> str:
    """Sign in as the dashboard's form does; the session cookie's value."""
    response = httpx.post(
        f"{server.url}/signin", data={"key": key, "next": "/"}, headers=server.origin
    )
    assert response.status_code == 303, response.text
    return response.cookies[COOKIE]


def _dataset_names(server: Server, cookie: str) -> set[str]:
    response = httpx.get(f"{server.url}/api/v1/datasets", cookies={COOKIE: cookie})
    assert response.status_code == 200, response.text
    return {d["name"] for d in response.json()["items"]}


def _upload(server: Server, name: str, **kwargs: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/datasets",
        # Different bytes per name: the same bytes again would return the stored data set.
        files={"file": (f"{name}.csv", family_csv(n_rows=60, seed=zlib.crc32(name.encode())))},
        data={"name": name},
        **kwargs,  # type: ignore[arg-type]
    )


def test_login_csrf_from_another_origin_cannot_replace_the_session(server: Server):
    victim = _sign_in(server, server.alice)
    forged = {"key": server.mallory, "next": "/"}
    for headers in (
        server.attacker(),  # another port of the same host: same site, other origin
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},  # a sandboxed frame or data: URL
        {"Sec-Fetch-Site": "same-site"},  # Origin stripped, fetch metadata still says
        {},  # neither header: not a browser form, refused on the sign-in form
    ):
        response = httpx.post(
            f"{server.url}/signin", data=forged, headers=headers, cookies={COOKIE: victim}
        )
        assert response.status_code == 403, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "set-cookie" not in response.headers
    # Alice's session is untouched and still hers.
    response = httpx.get(f"{server.url}/api/v1/jobs", cookies={COOKIE: victim})
    assert response.status_code == 200
    assert _upload(server, "alice-own", headers=server.bearer(server.alice)).status_code == 201
    assert "alice-own" in _dataset_names(server, victim)


def test_cookie_changes_need_the_same_origin_and_the_csrf_token(server: Server):
    victim = _sign_in(server, server.alice)
    cookies = {COOKIE: victim}
    token = {"X-CSRF-Token": csrf_token(victim)}
    bearer = server.bearer(server.alice)
    dataset = _upload(server, "victim-data", headers=bearer).json()["id"]
    job = httpx.post(f"{server.url}/api/v1/jobs", json=job_spec(dataset), headers=bearer)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]

    # Planting a data set and canceling a job from a page on another port (the cookie
    # is SameSite=Strict, but another port is the same site, so the browser sends it).
    for headers in (server.attacker(), {"Sec-Fetch-Site": "same-site"}):
        planted = _upload(server, "planted", headers=headers, cookies=cookies)
        assert planted.status_code == 403, planted.text
        canceled = httpx.post(
            f"{server.url}/api/v1/jobs/{job_id}/cancel", headers=headers, cookies=cookies
        )
        assert canceled.status_code == 403, canceled.text
        deleted = httpx.delete(
            f"{server.url}/api/v1/datasets/{dataset}", headers=headers, cookies=cookies
        )
        assert deleted.status_code == 403
    # The right origin is not enough without the token (nor is a tool with the cookie).
    for headers in (server.origin, {}):
        planted = _upload(server, "planted", headers=headers, cookies=cookies)
        assert planted.status_code == 403, planted.text
        assert "X-CSRF-Token" in planted.json()["detail"]
    wrong = {**server.origin, "X-CSRF-Token": csrf_token("another-session")}
    assert _upload(server, "planted", headers=wrong, cookies=cookies).status_code == 403

    assert "planted" not in _dataset_names(server, victim)
    status = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=bearer).json()["status"]
    assert status == "queued"

    # The dashboard's own request (same origin, the page's token) works; so does a
    # bearer key from anywhere (no ambient credential), without a token.
    mine = _upload(server, "from-dashboard", headers={**server.origin, **token}, cookies=cookies)
    assert mine.status_code == 201, mine.text
    tool = _upload(server, "from-tool", headers={**server.attacker(), **bearer})
    assert tool.status_code == 201, tool.text
    canceled = httpx.post(
        f"{server.url}/api/v1/jobs/{job_id}/cancel",
        headers={**server.origin, **token},
        cookies=cookies,
    )
    assert canceled.status_code == 202, canceled.text
    assert {"from-dashboard", "from-tool"} <= _dataset_names(server, victim)


def test_sign_out_cannot_be_forced_and_revokes_the_session(server: Server):
    victim = _sign_in(server, server.alice)
    cookies = {COOKIE: victim}
    for headers, data in (
        (server.attacker(), {"csrf_token": csrf_token(victim)}),
        (server.origin, {}),  # a same-origin post without the page's token
        (server.origin, {"csrf_token": "x"}),
    ):
        out = httpx.post(f"{server.url}/signout", data=data, headers=headers, cookies=cookies)
        assert out.status_code == 403, out.text
    assert httpx.get(f"{server.url}/api/v1/jobs", cookies=cookies).status_code == 200

    out = httpx.post(
        f"{server.url}/signout",
        data={"csrf_token": csrf_token(victim)},
        headers=server.origin,
        cookies=cookies,
    )
    assert out.status_code == 303
    assert f'{COOKIE}=""' in out.headers["set-cookie"]
    # Revoked on the server: a copy of the cookie opens nothing any more.
    assert httpx.get(f"{server.url}/api/v1/jobs", cookies=cookies).status_code == 401
    page = httpx.get(f"{server.url}/", cookies=cookies)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/signin")


def test_the_cookie_holds_a_session_id_that_expires_and_dies_with_its_key(server: Server):
    response = httpx.post(f"{server.url}/signin", data={"key": server.alice}, headers=server.origin)
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie
    assert "Max-Age=43200" in set_cookie  # AUXSEL_SESSION_HOURS=12, not 30 days
    token = response.cookies[COOKIE]
    assert server.alice not in set_cookie
    # not even the key's secret (the whole of it: a urlsafe secret may itself hold "_")
    assert server.alice.split("_", 2)[2] not in set_cookie

    engine = make_engine(server.db_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            stored = session.scalars(select(WebSession.id_hash)).all()
        assert token not in stored  # only its hash is stored
        # Expired on the server: refused whatever the browser keeps.
        with write_transaction(sessions) as session:
            session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert httpx.get(f"{server.url}/api/v1/jobs", cookies={COOKIE: token}).status_code == 401

        # A revoked key ends its sessions at once.
        key = create_key(sessions, "carol")
        live = _sign_in(server, key.key)
        assert httpx.get(f"{server.url}/api/v1/jobs", cookies={COOKIE: live}).status_code == 200
        assert revoke_key(sessions, key.id)
        assert httpx.get(f"{server.url}/api/v1/jobs", cookies={COOKIE: live}).status_code == 401
    finally:
        engine.dispose()
    # A raw key in the old cookie is not a credential any more.
    legacy = httpx.get(f"{server.url}/api/v1/jobs", cookies={"auxsel_key": server.alice})
    assert legacy.status_code == 401


def _rss_hwm_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


def _tmp_bytes(tmp: Path) -> int:
    return sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())


def _status(sock: socket.socket) -> int | None:
    """The status of the answer on ``sock``; None if the server reset the connection
    before it could be read (it may close without reading the rest of a body)."""
    answer = b""
    try:
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    except ConnectionResetError:
        return None
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1])


def _answer_to(url: str, request: bytes) -> int | None:
    """Send ``request`` (a head, perhaps a little body) and read the answer: the
    server must answer without waiting for the rest of the declared body."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(request)
        return _status(sock)


def _stream(url: str, head: bytes, chunk: bytes, total: int) -> tuple[int | None, int]:
    """Send a head, then ``chunk`` after ``chunk`` until the server answers or closes
    (or ``total`` bytes went): (the status if it could be read, bytes sent)."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(head)
        try:
            while sent < total:
                sock.settimeout(0.0)  # a non-blocking look for an answer
                try:
                    sock.recv(1, socket.MSG_PEEK)
                    break  # the answer (or the close) is here: stop sending
                except BlockingIOError:
                    pass
                finally:
                    sock.settimeout(60)
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return None, sent
        return _status(sock), sent


def test_sign_in_refuses_big_bodies_before_spooling_them(server: Server):
    host = urlsplit(server.url).netloc
    before_rss = _rss_hwm_kib(server.pid)
    form = f"POST /signin HTTP/1.1\r\nHost: {host}\r\nOrigin: {server.url}\r\n"
    multipart = "Content-Type: multipart/form-data; boundary=x\r\n"
    urlencoded = "Content-Type: application/x-www-form-urlencoded\r\n"
    chunked = "Transfer-Encoding: chunked\r\n\r\n"
    part = '--x\r\nContent-Disposition: form-data; name="key"; filename="k"\r\n\r\n'
    # The attack: a 500 MiB multipart file part, no key. Answered before a byte of the
    # body is sent (so nothing of it can be spooled anywhere).
    head = f"{form}{multipart}Content-Length: {500 << 20}\r\n\r\n"
    # 413 from the size guard (over the 1 MiB cap of non-upload routes) or 415 from the
    # sign-in form itself (not url-encoded): either way before the body is read.
    assert _answer_to(server.url, head.encode()) in (413, 415)
    # The same streamed for real, without a Content-Length: refused, nothing kept.
    body = part.encode() + b"\0" * (1 << 20)
    status, sent = _stream(
        server.url,
        f"{form}{multipart}{chunked}".encode(),
        f"{len(body):x}\r\n".encode() + body + b"\r\n",
        256 << 20,
    )
    assert status in (413, 415, None)  # None: closed before the answer was read
    assert sent < 256 << 20  # the server stopped it
    # A url-encoded form without a Content-Length is cut off past 8 KiB with 413...
    body = b"key=" + b"a" * (16 << 10)
    framed = f"{form}{urlencoded}{chunked}{len(body):x}\r\n".encode() + body
    assert _answer_to(server.url, framed) == 413
    # ... and one that declares more is refused at once.
    declared = httpx.post(
        f"{server.url}/signin",
        content=b"key=" + b"a" * 9000,
        headers={**server.origin, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert declared.status_code == 413
    assert declared.headers["content-type"].startswith("application/problem+json")

    assert _tmp_bytes(server.tmp) < 1 << 20, list(server.tmp.rglob("*"))
    grown_mib = (_rss_hwm_kib(server.pid) - before_rss) / 1024
    assert grown_mib < 100, f"the server's peak RSS grew by {grown_mib:.0f} MiB"
    # The server still serves sign-ins.
    assert _sign_in(server, server.alice)


def test_docs_need_a_key_by_default_and_load_nothing_from_a_cdn(server: Server):
    assert httpx.get(f"{server.url}/openapi.json").status_code == 401
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=%2Fdocs"
    assert httpx.get(f"{server.url}/redoc").status_code == 404

    bearer = server.bearer(server.alice)
    document = httpx.get(f"{server.url}/openapi.json", headers=bearer)
    assert document.status_code == 200
    assert "/api/v1/jobs" in document.json()["paths"]
    assert document.headers["cache-control"] == "no-store"
    cookie = {COOKIE: _sign_in(server, server.alice)}
    html = httpx.get(f"{server.url}/docs", cookies=cookie)
    assert html.status_code == 200
    assert "cdn" not in html.text.lower()
    assert "/static/vendor/swagger-ui-bundle-5.35.0.js" in html.text
    assert "script-src 'self'" in html.headers["content-security-policy"]
    script = httpx.get(f"{server.url}/static/vendor/swagger-ui-bundle-5.35.0.js")
    assert script.status_code == 200


@pytest.mark.parametrize(
    ("mode", "anonymous", "with_key"), [("public", 200, 200), ("off", 404, 404)]
)
def test_docs_exposure_is_a_setting(tmp_path: Path, mode: str, anonymous: int, with_key: int):
    settings = make_settings(
        tmp_path / "data", f"sqlite:///{tmp_path / 'auxsel.db'}", auth="on", docs=mode
    )
    with TestClient(create_app(settings)) as client:
        key = create_key(client.app.state.sessions, "alice").key  # type: ignore[attr-defined]
        bearer = {"Authorization": f"Bearer {key}"}
        for path in ("/openapi.json", "/docs"):
            assert client.get(path, follow_redirects=False).status_code == anonymous
            assert client.get(path, headers=bearer).status_code == with_key


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    proc, url, key, _ = serve_with_key(
        tmp_path_factory.mktemp("public"),
        worker=False,
        AUXSEL_PUBLIC_URL="https://auxsel.example:8443/",
    )
    yield url, key
    proc.stop()


def test_links_use_the_public_url_not_the_host_header(public_server: tuple[str, str]):
    url, key = public_server
    evil = {"Authorization": f"Bearer {key}", "Host": "evil.example"}
    upload = httpx.post(
        f"{url}/api/v1/datasets", files={"file": ("f.csv", family_csv(n_rows=60))}, headers=evil
    )
    assert upload.status_code == 201, upload.text
    dataset = upload.json()["id"]
    assert upload.headers["location"] == f"https://auxsel.example:8443/api/v1/datasets/{dataset}"
    for _ in range(2):
        job = httpx.post(f"{url}/api/v1/jobs", json=job_spec(dataset), headers=evil)
        assert job.status_code == 202, job.text
        assert job.headers["location"].startswith("https://auxsel.example:8443/api/v1/jobs/")
        assert "evil.example" not in job.text
    listing = httpx.get(f"{url}/api/v1/jobs?page_size=1", headers=evil)
    assert listing.headers["link"].startswith("<https://auxsel.example:8443/api/v1/jobs?")
    # A browser change must come from the public origin.
    signin = {"key": key}
    local = httpx.post(f"{url}/signin", data=signin, headers={"Origin": url})
    assert local.status_code == 403
    assert "AUXSEL_PUBLIC_URL" not in local.text  # the setting is set: no hint
    public = httpx.post(
        f"{url}/signin", data=signin, headers={"Origin": "https://auxsel.example:8443"}
    )
    assert public.status_code == 303
    assert "Secure" in public.headers["set-cookie"]  # https behind the proxy


def test_api_answers_are_not_sniffed_or_stored(server: Server):
    bearer = server.bearer(server.alice)
    for response in (
        httpx.get(f"{server.url}/api/v1/jobs", headers=bearer),
        httpx.get(f"{server.url}/api/v1/jobs/job_missing", headers=bearer),
        httpx.get(f"{server.url}/api/v1/datasets"),  # 401
        httpx.post(f"{server.url}/api/v1/jobs", json={}, headers=bearer),  # 422
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] in ("no-store", "private, no-cache")
    health = httpx.get(f"{server.url}/healthz")
    assert health.headers["x-content-type-options"] == "nosniff"


def test_cross_origin_changes_are_refused_with_keys_off_too(tmp_path: Path):
    """On loopback without keys any page the user opens could post to the server; a
    browser's cross-origin post is refused, tools (no Origin) are not."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'auxsel.db'}")
    with TestClient(create_app(settings)) as client:
        files = {"file": ("f.csv", family_csv(n_rows=60))}
        attack = client.post(
            "/api/v1/datasets",
            files=files,
            headers={"Origin": "http://127.0.0.1:9", "Sec-Fetch-Site": "same-site"},
        )
        assert attack.status_code == 403
        assert client.get("/api/v1/datasets").json()["items"] == []
        assert client.post("/api/v1/datasets", files=files).status_code == 201
        same = client.post("/api/v1/datasets", files=files, headers={"Origin": "http://testserver"})
        assert same.status_code == 200  # the same bytes again: the stored data set


def test_public_url_must_be_an_origin():
    with pytest.raises(ValueError, match="without a path"):
        make_settings(Path("x"), "sqlite://", public_url="https://a.example/auxsel")
    assert make_settings(Path("x"), "sqlite://", public_url="HTTPS://A.example/").public_url == (
        "https://a.example"
    )
