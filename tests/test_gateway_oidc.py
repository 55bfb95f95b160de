"""Single sign-on by configuration alone: the gateway against a real OpenID Connect provider.

The provider runs here on 127.0.0.1 and speaks the protocol as a city's identity provider does:
a discovery document, an authorization endpoint (which logs the browser in at once "as" the user
the test sets), a token endpoint that checks the code, the redirect URI and the client's id and
secret and answers with an access token and an RS256-signed ID token, and its signing keys. The
gateway runs under uvicorn with only the ``oidc_*`` settings, and a plain HTTP client plays the
browser, carrying cookies from the gateway to the provider and back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt  # what Authlib verifies ID tokens with (authlib.jose is deprecated)
from joserfc.jwk import KeySet, RSAKey

from retina.services.core.ports import free_port
from retina.services.core.settings import GatewaySettings
from retina.services.gateway.accounts import AccountStore
from retina.services.gateway.api_session import configure_oidc
from retina.services.gateway.app import GatewayState, create_app
from retina.services.gateway.backends import Backends
from retina.services.gateway.events import EventSource

CLIENT_ID = "retina-gateway"
CLIENT_SECRET = "the client secret the city registered"
CALLBACK = "/api/v1/auth/oidc/callback"
PASSWORD = "a long test password"


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """``app`` under uvicorn on 127.0.0.1:``port`` in a thread; yields its URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Provider:
    """A small OpenID Connect provider (authorization code flow, client_secret_basic or _post).

    ``user`` holds the claims of whoever logs in next; ``tamper`` makes the next ID token wrong
    in one way: "audience", "audience-with-azp", "signature", "issuer", "nonce" or "expired".
    """

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "city-key-1", "use": "sig", "alg": "RS256"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "city-key-1"})  # same kid
        self.user: dict[str, Any] = {}
        self.tamper = ""
        self.redirect_uri = ""  # the callback registered for the client (set with each gateway)
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens_issued = 0  # over the module: compare before and after
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "claims_supported": ["sub", "preferred_username", "department", "retina_role"],
            }

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            return KeySet([self.key]).as_dict(private=False)

        @app.get("/authorize")
        async def authorize(
            response_type: str, client_id: str, redirect_uri: str, scope: str, state: str, nonce: str = ""
        ) -> Any:
            if client_id != CLIENT_ID or redirect_uri != self.redirect_uri:
                return JSONResponse({"error": "invalid_request", "error_description": "unknown client"}, 400)
            if response_type != "code" or "openid" not in scope.split():
                back = {"error": "unsupported_response_type", "state": state}
                return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", 302)
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"user": dict(self.user), "nonce": nonce, "redirect_uri": redirect_uri}
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", 302)

        @app.post("/token")
        async def token(
            request: Request,
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(""),
            client_id: str = Form(""),
            client_secret: str = Form(""),
        ) -> JSONResponse:
            scheme, _, basic = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "basic":
                given_id, _, given_secret = base64.b64decode(basic).decode().partition(":")
                client_id, client_secret = unquote(given_id), unquote(given_secret)
            if client_id != CLIENT_ID or not secrets.compare_digest(client_secret, CLIENT_SECRET):
                return JSONResponse({"error": "invalid_client"}, 401, {"WWW-Authenticate": "Basic"})
            grant = self.codes.pop(code, None)  # a code is good once
            if grant_type != "authorization_code" or grant is None or grant["redirect_uri"] != redirect_uri:
                return JSONResponse({"error": "invalid_grant"}, 400)
            access_token = secrets.token_urlsafe(24)
            self.tokens_issued += 1
            body = {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self._id_token(grant, access_token),
            }
            return JSONResponse(body, headers={"Cache-Control": "no-store"})

        return app

    def _id_token(self, grant: dict[str, Any], access_token: str) -> str:
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode()).digest()
        claims = {
            "iss": self.url,
            "sub": "sub-" + hashlib.sha256(str(grant["user"]).encode()).hexdigest()[:12],
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "nonce": grant["nonce"],
            "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(),
            **grant["user"],
        }
        key = self.key
        if self.tamper == "audience":
            claims["aud"] = "some-other-application"
        elif self.tamper == "audience-with-azp":  # issued at this client's request, for someone else
            claims["aud"], claims["azp"] = ["some-other-application"], CLIENT_ID
        elif self.tamper == "issuer":
            claims["iss"] = "http://127.0.0.1:9/another-provider"
        elif self.tamper == "nonce":
            claims["nonce"] = "the-nonce-of-another-login"
        elif self.tamper == "expired":
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        elif self.tamper == "signature":
            key = self.other_key
        return jwt.encode({"alg": "RS256", "kid": "city-key-1", "typ": "JWT"}, claims, key)


@pytest.fixture(scope="module")
def provider_server() -> Iterator[Provider]:
    port = free_port()
    provider = Provider(port)
    with serving(provider.app, port):
        yield provider


@pytest.fixture
def provider(provider_server: Provider) -> Provider:
    provider_server.user, provider_server.tamper = {}, ""
    return provider_server


class Gateway:
    def __init__(self, url: str, accounts: AccountStore):
        self.url = url
        self.accounts = accounts

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


async def make_backends(address: str) -> Backends:
    return Backends(address, address, address, None)


@pytest.fixture
def start_gateway(tmp_path: Path, provider: Provider) -> Iterator[Callable[..., Gateway]]:
    """Start the gateway under uvicorn; ``sso=False`` leaves single sign-on unconfigured."""
    with ExitStack() as stack:

        def start(sso: bool = True, **settings: Any) -> Gateway:
            port = free_port()
            values: dict[str, Any] = {
                "data_dir": tmp_path,
                "allow_unauthenticated": True,
                "cookie_secure": False,
                "http_port": port,
            }
            if sso:
                values |= {
                    "oidc_issuer": provider.url,
                    "oidc_client_id": CLIENT_ID,
                    "oidc_client_secret": CLIENT_SECRET,
                }
            values |= settings
            config = GatewaySettings.load(values)
            accounts = AccountStore(tmp_path / "accounts.db")
            stack.callback(accounts.close)
            # Login needs none of the services behind the gateway: lazy channels to a closed port, made
            # and closed on a loop of their own (grpc.aio binds a channel to the loop it is made on).
            loop = asyncio.new_event_loop()
            stack.callback(loop.close)
            unused = f"127.0.0.1:{free_port()}"
            backends = loop.run_until_complete(make_backends(unused))
            stack.callback(lambda: loop.run_until_complete(backends.close()))
            app = create_app(GatewayState(config, accounts, backends, EventSource()))
            configure_oidc(app, config, "test-session-secret")
            url = stack.enter_context(serving(app, port))
            provider.redirect_uri = url + CALLBACK
            return Gateway(url, accounts)

        yield start


def sso_login(browser: httpx.Client) -> httpx.Response:
    """Walk the browser through the login: gateway → provider → gateway's callback."""
    to_provider = browser.get("/api/v1/auth/oidc/login")
    assert to_provider.status_code == 302, to_provider.text
    back = browser.get(to_provider.headers["location"])
    assert back.status_code == 302, back.text
    return browser.get(back.headers["location"])


def assert_no_session(gateway: Gateway, browser: httpx.Client, answer: httpx.Response, name: str) -> None:
    assert "retina_session" not in answer.cookies
    assert browser.get("/api/v1/auth/me").status_code == 401
    assert gateway.accounts.get_user(name) is None


def test_login_through_the_city_provider(provider: Provider, start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway()
    provider.user = {"preferred_username": "alice", "department": "traffic", "retina_role": "dispatcher"}
    with gateway.browser() as browser:
        to_provider = browser.get("/api/v1/auth/oidc/login")
        assert to_provider.status_code == 302
        authorize = httpx.URL(to_provider.headers["location"])
        assert str(authorize).startswith(f"{provider.url}/authorize?")
        assert authorize.params["client_id"] == CLIENT_ID
        assert authorize.params["redirect_uri"] == gateway.url + CALLBACK
        assert authorize.params["scope"].split() == ["openid", "profile"]
        assert authorize.params["state"] and authorize.params["nonce"]

        back = browser.get(authorize)
        assert back.status_code == 302
        done = browser.get(back.headers["location"])
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/"
        assert done.cookies["retina_session"] and done.cookies["retina_csrf"]

        me = browser.get("/api/v1/auth/me")
        assert me.status_code == 200, me.text
        assert me.json() | {"created_at": None} == {
            "name": "alice",
            "department": "traffic",
            "roles": ["dispatcher"],
            "disabled": False,
            "source": "oidc",
            "via": "session",
            "created_at": None,
        }
    user = gateway.accounts.get_user("alice")
    assert user is not None and user.source == "oidc" and user.roles == {"dispatcher"}
    assert gateway.accounts.authenticate("alice", PASSWORD) is None  # no password to guess
    [entry] = gateway.accounts.audit_entries(actor="alice", action="login")
    assert entry.outcome == "ok" and entry.details == {"via": "oidc"}

    # The provider stays the source of truth: a later login carries its new department and roles.
    provider.user = {"preferred_username": "alice", "department": "police", "retina_role": ["police", "ops"]}
    with gateway.browser() as browser:
        assert sso_login(browser).status_code == 303
        assert browser.get("/api/v1/auth/me").json()["department"] == "police"
        assert browser.get("/api/v1/auth/me").json()["roles"] == ["ops", "police"]


def test_claim_names_are_configuration(provider: Provider, start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway(oidc_department_claim="org_unit", oidc_role_claim="groups")
    provider.user = {"sub": "bob", "org_unit": "parks", "groups": ["admin"], "department": "ignored"}
    with gateway.browser() as browser:
        assert sso_login(browser).status_code == 303
        me = browser.get("/api/v1/auth/me").json()
    assert (me["name"], me["department"], me["roles"]) == ("bob", "parks", ["admin"])


@pytest.mark.parametrize(
    "tamper", ["audience", "audience-with-azp", "signature", "issuer", "nonce", "expired"]
)
def test_a_bad_id_token_is_refused(
    tamper: str, provider: Provider, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway()
    provider.user = {"preferred_username": "mallory", "department": "police", "retina_role": "admin"}
    provider.tamper = tamper
    with gateway.browser() as browser:
        answer = sso_login(browser)
        assert answer.status_code == 401, answer.text
        assert answer.json() == {"detail": "single sign-on failed: log in again"}
        assert_no_session(gateway, browser, answer, "mallory")


def test_a_wrong_client_secret_is_refused_by_the_provider(
    provider: Provider, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway(oidc_client_secret="not the registered secret")
    provider.user = {"preferred_username": "alice", "department": "traffic", "retina_role": "dispatcher"}
    issued = provider.tokens_issued
    with gateway.browser() as browser:
        answer = sso_login(browser)
        assert answer.status_code == 401, answer.text
        assert_no_session(gateway, browser, answer, "alice")
    assert provider.tokens_issued == issued


def test_a_callback_from_another_browser_is_refused(
    provider: Provider, start_gateway: Callable[..., Gateway]
) -> None:
    """Login CSRF: the code and state the provider sent to one browser are no good in another."""
    gateway = start_gateway()
    provider.user = {"preferred_username": "alice", "department": "traffic", "retina_role": "dispatcher"}
    with gateway.browser() as victim, gateway.browser() as attacker:
        to_provider = attacker.get("/api/v1/auth/oidc/login")
        back = attacker.get(to_provider.headers["location"])
        answer = victim.get(back.headers["location"])
        assert answer.status_code == 401, answer.text
        assert_no_session(gateway, victim, answer, "alice")


def test_claims_without_a_department_are_refused(
    provider: Provider, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway()
    provider.user = {"preferred_username": "carol", "retina_role": "dispatcher"}
    with gateway.browser() as browser:
        answer = sso_login(browser)
        assert answer.status_code == 403
        assert "'department'" in answer.json()["detail"]
        assert_no_session(gateway, browser, answer, "carol")


def test_a_role_retina_does_not_have_is_refused(
    provider: Provider, start_gateway: Callable[..., Gateway]
) -> None:
    gateway = start_gateway()
    provider.user = {
        "preferred_username": "dave",
        "department": "traffic",
        "retina_role": ["dispatcher", "mayor"],
    }
    with gateway.browser() as browser:
        answer = sso_login(browser)
        assert answer.status_code == 403
        assert "mayor is not a role" in answer.json()["detail"]
        assert_no_session(gateway, browser, answer, "dave")


def test_sso_cannot_take_over_a_local_user(provider: Provider, start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway()
    gateway.accounts.add_user("root", "platform", ["admin"], PASSWORD)
    provider.user = {"preferred_username": "root", "department": "police", "retina_role": "police"}
    with gateway.browser() as browser:
        answer = sso_login(browser)
        assert answer.status_code == 403
        assert "'root' is a local user" in answer.json()["detail"]
        assert "retina_session" not in answer.cookies
        assert browser.get("/api/v1/auth/me").status_code == 401
    user = gateway.accounts.get_user("root")
    assert user is not None
    assert (user.source, user.department, user.roles) == ("local", "platform", {"admin"})
    assert gateway.accounts.authenticate("root", PASSWORD) is not None


def test_without_oidc_settings_the_routes_are_not_there(start_gateway: Callable[..., Gateway]) -> None:
    gateway = start_gateway(sso=False)
    with gateway.browser() as browser:
        for path in ("/api/v1/auth/oidc/login", f"{CALLBACK}?code=x&state=y"):
            answer = browser.get(path)
            assert answer.status_code == 404
            assert answer.json()["detail"].startswith("single sign-on is not configured")
