"""Who is calling the HTTP API: bearer tokens or HMAC-signed webhooks.

Two ways to authenticate, checked in this order:

- `Authorization: Bearer <token>` with a token from AMBER_API_TOKENS
  ("token1=actor1,token2=actor2"); the identity is the token's actor.
- A signed webhook: `X-Amber-Timestamp: <unix seconds>`, `X-Amber-Actor:
  <name>` and `X-Amber-Signature: sha256=<hex HMAC-SHA256>` keyed with
  AMBER_WEBHOOK_SECRET over `signed_message()`: the timestamp, the method, the
  request target, the actor and the raw body. The identity is
  "webhook:<name>". The actor and the target are signed so that a captured
  request cannot be replayed as someone else or against another thread, and
  the timestamp must lie within MAX_SKEW_S of now so that it cannot be replayed
  later. Within that window a replay is an identical retry: the API requires a
  signed request to name what it acts on (see consumers.api). Accepted on POST
  endpoints only.

The actor recorded on an event always comes from here, never from a request
body. With neither variable set every authenticated endpoint answers 401.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from engine.errors import SettingsError

_ACTOR = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,126}")  # printable ASCII, no leading blank
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # unix seconds; the bound keeps int() cheap
_MIN_SECRET_BYTES = 16
MAX_SKEW_S = 300  # how far a webhook's X-Amber-Timestamp may lie from the server's clock


class AuthError(Exception):
    """The request does not prove who sent it; the API answers 401 and appends nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    actor: str
    method: str  # "bearer" or "hmac"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    """Accepted credentials. `tokens` maps a bearer token to the actor it stands for."""

    tokens: Mapping[str, str] = field(default_factory=dict)
    webhook_secret: bytes | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuthConfig:
        """From AMBER_API_TOKENS and AMBER_WEBHOOK_SECRET; SettingsError names a bad one."""
        env = os.environ if env is None else env
        tokens = parse_tokens(env.get("AMBER_API_TOKENS", ""))
        raw_secret = env.get("AMBER_WEBHOOK_SECRET", "")
        secret = raw_secret.encode("utf-8") if raw_secret else None
        if secret is not None and len(secret) < _MIN_SECRET_BYTES:
            raise SettingsError("AMBER_WEBHOOK_SECRET",
                                f"must be at least {_MIN_SECRET_BYTES} bytes")
        return cls(tokens=tokens, webhook_secret=secret)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens) or self.webhook_secret is not None


def parse_tokens(raw: str) -> dict[str, str]:
    """"token1=actor1,token2=actor2" → {token: actor}; SettingsError on a malformed entry."""
    tokens: dict[str, str] = {}
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        token, sep, actor = (part.strip() for part in entry.partition("="))
        if not sep or not token or not _ACTOR.fullmatch(actor) or not token.isprintable():
            raise SettingsError("AMBER_API_TOKENS",
                                "entries must look like token=actor (printable ASCII actor)")
        if token in tokens:
            raise SettingsError("AMBER_API_TOKENS", "a token appears twice")
        tokens[token] = actor
    return tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedRequest:
    """What of an HTTP request a signature covers."""

    method: str  # "POST"
    # The percent-encoded path, and "?" + query if there is one, as they reach the
    # app (behind a proxy that rewrites paths, what reaches Amber is what counts).
    target: str  # e.g. "/threads/t-1/decisions"
    body: bytes


def signed_message(request: SignedRequest, *, timestamp: str, actor: str) -> bytes:
    """The bytes a webhook signs: version, timestamp, method, target and actor, then the body."""
    head = f"v1\n{timestamp}\n{request.method.upper()}\n{request.target}\n{actor}\n"
    return head.encode("utf-8", "surrogateescape") + request.body


def sign(secret: bytes, request: SignedRequest, *, timestamp: str, actor: str) -> str:
    """The X-Amber-Signature value (what a webhook sender computes)."""
    message = signed_message(request, timestamp=timestamp, actor=actor)
    return "sha256=" + hmac.new(secret, message, hashlib.sha256).hexdigest()


def webhook_headers(secret: bytes, request: SignedRequest, *, actor: str,
                    now: float | None = None) -> dict[str, str]:
    """The three headers a sender adds to sign `request` as `actor`."""
    if not _ACTOR.fullmatch(actor):
        raise ValueError("the actor must be printable ASCII without a leading blank, "
                         "at most 127 characters")
    timestamp = str(int(time.time() if now is None else now))
    return {"X-Amber-Timestamp": timestamp, "X-Amber-Actor": actor,
            "X-Amber-Signature": sign(secret, request, timestamp=timestamp, actor=actor)}


class Authenticator:
    """Checks one request's headers (and raw body, for HMAC) against an AuthConfig."""

    def __init__(self, config: AuthConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._tokens = [(t.encode("utf-8"), a) for t, a in config.tokens.items()]
        self._clock = clock

    def identify(self, headers: Mapping[str, str], request: SignedRequest, *,
                 allow_hmac: bool) -> Identity:
        """The caller's identity; AuthError if the credentials are missing or wrong."""
        authorization = headers.get("authorization")
        if authorization is not None:
            return self._bearer(authorization)
        signature = headers.get("x-amber-signature")
        if signature is not None and allow_hmac:
            return self._hmac(signature, headers, request)
        raise AuthError("authentication required: Authorization: Bearer <token>" + (
            " or X-Amber-Signature + X-Amber-Timestamp + X-Amber-Actor" if allow_hmac else ""))

    def _bearer(self, authorization: str) -> Identity:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Authorization must be 'Bearer <token>'")
        given = token.strip().encode("utf-8", "replace")
        actor = None
        for known, who in self._tokens:  # compare with every token: no timing hint
            if hmac.compare_digest(known, given):
                actor = who
        if actor is None:
            raise AuthError("unknown bearer token")
        return Identity(actor=actor, method="bearer")

    def _hmac(self, signature: str, headers: Mapping[str, str], request: SignedRequest) -> Identity:
        secret = self.config.webhook_secret
        if secret is None:
            raise AuthError("signed webhooks are not enabled (AMBER_WEBHOOK_SECRET is unset)")
        match = _SIGNATURE.match(signature.strip())
        if match is None:
            raise AuthError("X-Amber-Signature must be 'sha256=<64 hex digits>'")
        actor = headers.get("x-amber-actor")
        if actor is None or not _ACTOR.fullmatch(actor):
            raise AuthError("a signed webhook needs X-Amber-Actor (printable ASCII, "
                            "at most 127 characters)")
        timestamp = headers.get("x-amber-timestamp")
        if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
            raise AuthError("a signed webhook needs X-Amber-Timestamp (unix seconds)")
        expected = sign(secret, request, timestamp=timestamp, actor=actor)
        if not hmac.compare_digest(expected, f"sha256={match.group(1).lower()}"):
            raise AuthError("X-Amber-Signature does not match the request")
        # Checked only once the signature holds: an unsigned caller learns nothing of our clock.
        if abs(self._clock() - int(timestamp)) > MAX_SKEW_S:
            raise AuthError(f"X-Amber-Timestamp is more than {MAX_SKEW_S} s from now: "
                            "a stale or replayed request")
        return Identity(actor=f"webhook:{actor}", method="hmac")
