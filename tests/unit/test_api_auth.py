"""Authentication of the HTTP API: bearer tokens, signed webhooks, 401s that append nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from consumers.api_auth import (
    MAX_SKEW_S,
    AuthConfig,
    Authenticator,
    AuthError,
    SignedRequest,
    parse_tokens,
    webhook_headers,
)
from engine.errors import SettingsError
from tests.unit.test_api_support import ALICE, SECRET, Api, make_api, signed


@pytest.fixture
def api() -> Api:
    return make_api()


def _decision(api: Api, thread: str, headers: dict[str, str], body: bytes) -> Any:
    return api.client.post(f"/threads/{thread}/decisions", content=body, headers=headers)


ENDPOINTS = [("POST", "/threads", {"graph": "doc_approval"}),
             ("POST", "/threads/w/decisions", {"value": True}),
             ("GET", "/threads", None), ("GET", "/threads/w", None),
             ("GET", "/threads/w/history", None), ("GET", "/threads/w/state", None)]
BAD_CREDENTIALS = [
    {},
    {"Authorization": "Bearer nope"},
    {"Authorization": "Basic dG9rLWFsaWNlOg=="},
    {"Authorization": "Bearer"},
    {"Authorization": "tok-alice"},
]


@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_missing_or_wrong_credentials_are_401_and_append_nothing(
        api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> None:
    api.waiting("w")
    before = api.ends()
    r = api.client.request(method, path, json=body, headers=headers)
    assert r.status_code == 401, r.json()
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.ends() == before


@pytest.mark.parametrize(("method", "path"), [("POST", "/threads"),
                                              ("POST", "/threads/w/decisions"),
                                              ("GET", "/threads/w/history?limit=-1"),
                                              ("GET", "/threads/%20x")])
def test_an_unauthenticated_invalid_request_is_401_not_422(api: Api, method: str,
                                                           path: str) -> None:
    r = api.client.request(method, path, content=b"{broken",
                           headers={"Content-Type": "application/json"})
    assert r.status_code == 401, r.json()


def test_a_signed_webhook_is_accepted_as_its_actor(api: Api) -> None:
    interrupt_id = api.waiting("w")
    body = json.dumps({"value": {"approved": True}, "interrupt_id": interrupt_id}).encode()
    r = _decision(api, "w", signed(body, "erp-7"), body)
    assert r.status_code == 202 and r.json()["actor"] == "webhook:erp-7"
    assert api.events("w")[-1].actor == "webhook:erp-7"


def test_a_signed_start_is_accepted(api: Api) -> None:
    body = json.dumps({"graph": "doc_approval", "thread_id": "hook-1"}).encode()
    r = api.client.post("/threads", content=body, headers=signed(body, "crm", path="/threads"))
    assert r.status_code == 202
    assert api.events("hook-1")[0].actor == "webhook:crm"


def _tampered(body: bytes) -> dict[str, str]:
    return signed(body.replace(b"true", b"false"))


@pytest.mark.parametrize("make_headers", [
    lambda body: signed(body, secret=b"another-secret-entirely"),
    _tampered,
    lambda body: signed(body, actor=None),
    lambda body: signed(body, actor=""),
    lambda body: signed(body, actor=" padded"),
    lambda body: {**signed(body), "X-Amber-Signature": "sha256=zz"},
    lambda body: {**signed(body), "X-Amber-Signature": signed(body)["X-Amber-Signature"][7:]},
    lambda body: {**signed(body), "X-Amber-Signature": "sha1=" + "0" * 40},
    lambda body: {**signed(body, "erp-7"), "X-Amber-Actor": "admin"},
    lambda body: signed(body, path="/threads/other/decisions"),
    lambda body: signed(body, now=time.time() - MAX_SKEW_S - 5),
    lambda body: signed(body, now=time.time() + MAX_SKEW_S + 5),
    lambda body: {k: v for k, v in signed(body).items() if k != "X-Amber-Timestamp"},
    lambda body: {**signed(body), "X-Amber-Timestamp": "soon"},
    lambda body: {**signed(body), "X-Amber-Timestamp": "9" * 400},
    lambda body: {**signed(body, now=time.time() - 3600),
                  "X-Amber-Timestamp": str(int(time.time()))},
], ids=["wrong secret", "other body", "no actor", "empty actor", "padded actor", "not hex",
        "no prefix", "sha1", "actor swapped", "signed for another thread", "stale", "future",
        "no timestamp", "timestamp not a number", "timestamp of 400 digits",
        "old signature, fresh timestamp"])
def test_bad_signatures_are_401_and_append_nothing(api: Api, make_headers: Any) -> None:
    api.waiting("w")
    body = json.dumps({"value": True}).encode()
    before = api.ends()
    r = _decision(api, "w", make_headers(body), body)
    assert r.status_code == 401, r.json()
    assert api.ends() == before


def test_a_signature_does_not_unlock_reads(api: Api) -> None:
    api.waiting("w")
    r = api.client.get("/threads/w", headers=signed(b""))
    assert r.status_code == 401


def test_signatures_are_refused_when_no_secret_is_configured() -> None:
    api = make_api(auth=AuthConfig(tokens={"tok-alice": "alice"}))
    api.waiting("w")
    body = json.dumps({"value": True}).encode()
    assert _decision(api, "w", signed(body), body).status_code == 401


def test_with_no_credentials_configured_everything_is_401_but_healthz() -> None:
    api = make_api(auth=AuthConfig())
    assert api.client.post("/threads", json={"graph": "doc_approval"},
                           headers=ALICE).status_code == 401
    assert api.client.get("/healthz").status_code == 200


def test_the_token_decides_the_actor(api: Api) -> None:
    api.waiting("w")
    r = api.client.post("/threads/w/decisions", json={"value": True},
                        headers={"Authorization": "bearer tok-bob"})
    assert r.status_code == 202 and r.json()["actor"] == "bob"


def test_tokens_parse_and_bad_ones_name_the_variable() -> None:
    assert parse_tokens(" a=alice , b=bob@example.com ,") == {"a": "alice",
                                                             "b": "bob@example.com"}
    assert parse_tokens("") == {}
    for bad in ("a", "=alice", "a=", "a=alice,a=bob", "a=ali\tce"):
        with pytest.raises(SettingsError, match="AMBER_API_TOKENS"):
            parse_tokens(bad)


def test_config_from_env() -> None:
    config = AuthConfig.from_env({"AMBER_API_TOKENS": "t=alice",
                                  "AMBER_WEBHOOK_SECRET": SECRET.decode()})
    assert config.tokens == {"t": "alice"} and config.webhook_secret == SECRET
    assert config.enabled and not AuthConfig.from_env({}).enabled
    with pytest.raises(SettingsError, match="AMBER_WEBHOOK_SECRET"):
        AuthConfig.from_env({"AMBER_WEBHOOK_SECRET": "short"})


def test_the_signature_is_the_documented_hmac() -> None:
    # Written out by hand, as a sender in another language would: a change of format breaks this.
    message = b'v1\n1800000000\nPOST\n/threads/t-1/decisions\nerp-7\n{"value":true}'
    expected = "sha256=" + hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    request = SignedRequest(method="POST", target="/threads/t-1/decisions",
                            body=b'{"value":true}')

    headers = webhook_headers(SECRET, request, actor="erp-7", now=1_800_000_000.9)

    assert headers == {"X-Amber-Timestamp": "1800000000", "X-Amber-Actor": "erp-7",
                       "X-Amber-Signature": expected}
    with pytest.raises(ValueError):
        webhook_headers(SECRET, request, actor="erp-7\n")


@pytest.mark.parametrize(("path", "body"), [
    ("/threads/w/decisions", {"value": {"approved": True}}),
    ("/threads", {"graph": "doc_approval"}),
], ids=["decision without interrupt_id", "start without thread_id"])
def test_a_signed_request_must_name_what_it_acts_on(api: Api, path: str,
                                                    body: dict[str, Any]) -> None:
    api.waiting("w")
    raw = json.dumps(body).encode()
    before = api.ends()

    r = api.client.post(path, content=raw, headers=signed(raw, "erp-7", path=path))

    assert r.status_code == 422 and r.json()["error"]["code"] == "unpinned_webhook"
    assert api.ends() == before


def test_a_signed_request_replayed_against_another_thread_is_refused(api: Api) -> None:
    interrupt_id = api.waiting("w")
    api.waiting("w2")
    body = json.dumps({"value": {"approved": True}, "interrupt_id": interrupt_id}).encode()
    headers = signed(body, "erp-7")  # signed for /threads/w/decisions
    assert _decision(api, "w", headers, body).status_code == 202
    before = api.ends()

    r = _decision(api, "w2", headers, body)

    assert r.status_code == 401 and "does not match" in r.json()["error"]["message"]
    assert api.ends() == before


def test_authenticator_directly() -> None:
    at = 1_800_000_000.0
    auth = Authenticator(AuthConfig(tokens={"t": "alice"}, webhook_secret=SECRET),
                         clock=lambda: at)
    empty = SignedRequest(method="GET", target="/threads", body=b"")
    assert auth.identify({"authorization": "Bearer t"}, empty, allow_hmac=False).actor == "alice"
    request = SignedRequest(method="POST", target="/threads", body=b"{}")
    headers = {k.lower(): v for k, v in webhook_headers(SECRET, request, actor="bot",
                                                        now=at - MAX_SKEW_S).items()}
    assert auth.identify(headers, request, allow_hmac=True).actor == "webhook:bot"
    with pytest.raises(AuthError):
        auth.identify(headers, request, allow_hmac=False)
    upper = {**headers, "x-amber-signature": headers["x-amber-signature"].upper()
             .replace("SHA256=", "sha256=")}
    assert auth.identify(upper, request, allow_hmac=True).method == "hmac"
    with pytest.raises(AuthError, match="X-Amber-Timestamp"):  # one second too old
        Authenticator(auth.config, clock=lambda: at + 1).identify(headers, request,
                                                                   allow_hmac=True)
