"""OAuth 2.0 token endpoint: password, client_credentials, refresh_token and JWT-bearer grants.

Tokens live here, behind their own lock, so an API call only touches org state
after its bearer token has been checked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .faults import FaultSettings
from .ids import make_id, parse_id, to_18

ORG_ID = make_id("00D", 1)
USER_ID = make_id("005", 1)
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GENERIC_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
JWT_MAX_LIFETIME_S = 300


class OAuthError(Exception):
    """A token-endpoint failure, rendered as RFC 6749 `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.body = {"error": error, "error_description": description}


@dataclass(slots=True)
class Credentials:
    """The single user and connected app the emulated org knows."""

    username: str
    password: str
    security_token: str
    client_id: str
    client_secret: str
    rotate_refresh_tokens: bool = False
    jwt_public_key: str | None = None
    generic_login_host: bool = False


@dataclass(slots=True)
class _Access:
    uses: int = 0
    refresh_token: str | None = None


@dataclass(slots=True)
class TokenCheck:
    """Outcome of checking a bearer token: `ok`, `invalid` or `expired` (TTL used up)."""

    status: str


@dataclass
class TokenStore:
    """Issued access tokens with their use counts, and the valid refresh tokens."""

    refresh: set[str] = field(default_factory=set)
    access: dict[str, _Access] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    token_requests: int = 0
    org_id: str = ORG_ID

    def issue(self, refresh_token: str | None = None) -> str:
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(48)}"
        with self.lock:
            self.access[token] = _Access(refresh_token=refresh_token)
        return token

    def check(self, token: str, ttl_requests: int) -> TokenCheck:
        """Count one use of a token; a token past its TTL is forgotten, like an expired session."""
        with self.lock:
            info = self.access.get(token)
            if info is None:
                return TokenCheck("invalid")
            if ttl_requests and info.uses >= ttl_requests:
                del self.access[token]
                return TokenCheck("expired")
            info.uses += 1
            return TokenCheck("ok")

    def revoke(self, token: str) -> bool:
        """Revoke an access token, or a refresh token together with its access tokens."""
        with self.lock:
            if self.access.pop(token, None) is not None:
                return True
            if token in self.refresh:
                self.refresh.discard(token)
                for key in [k for k, v in self.access.items() if v.refresh_token == token]:
                    del self.access[key]
                return True
            return False


class OAuthServer:
    """Turns a token request's parameters into a success body or an `OAuthError`.

    `faults` is the org's live fault settings: they can make the success body
    hostile (another `instance_url`) or broken (no `access_token`).
    """

    def __init__(self, credentials: Credentials, refresh_tokens: Iterable[str],
                 faults: FaultSettings | None = None, org_id: str = ORG_ID) -> None:
        self.credentials = credentials
        self.org_id = org_id_18(org_id)
        self.tokens = TokenStore(refresh=set(refresh_tokens), org_id=self.org_id)
        self.faults = faults if faults is not None else FaultSettings()

    def token(self, params: dict[str, str], basic: tuple[str, str] | None,
              base_url: str) -> dict[str, Any]:
        with self.tokens.lock:
            self.tokens.token_requests += 1
        grant = params.get("grant_type", "")
        if not grant:
            raise OAuthError("invalid_request", "grant type is missing")
        client_id = params.get("client_id") or (basic[0] if basic else "")
        client_secret = params.get("client_secret") or (basic[1] if basic else "")
        if grant == "password":
            return self._password(params, client_id, client_secret, base_url)
        if grant == "client_credentials":
            return self._client_credentials(client_id, client_secret, base_url)
        if grant == "refresh_token":
            return self._refresh(params, client_id, client_secret, base_url)
        if grant == JWT_GRANT:
            return self._jwt(params.get("assertion", ""), base_url)
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def revoke(self, token: str) -> None:
        if not token:
            raise OAuthError("unsupported_token_type", "Token type not supported")
        if not self.tokens.revoke(token):
            raise OAuthError("invalid_token", "Token was invalid")

    def _check_client(self, client_id: str, client_secret: str | None) -> None:
        creds = self.credentials
        if not hmac.compare_digest(client_id.encode(), creds.client_id.encode()):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if client_secret is not None and not hmac.compare_digest(
            client_secret.encode(), creds.client_secret.encode()
        ):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _password(self, params: dict[str, str], client_id: str, client_secret: str,
                  base_url: str) -> dict[str, Any]:
        creds = self.credentials
        self._check_client(client_id, client_secret)
        expected = (creds.password + creds.security_token).encode()
        good_user = params.get("username", "") == creds.username
        good_password = hmac.compare_digest(params.get("password", "").encode(), expected)
        if not (good_user and good_password):
            raise OAuthError("invalid_grant", "authentication failure")
        return self._success(base_url)

    def _client_credentials(self, client_id: str, client_secret: str,
                            base_url: str) -> dict[str, Any]:
        if self.credentials.generic_login_host:
            raise OAuthError("invalid_grant", "request not supported on this domain")
        self._check_client(client_id, client_secret)
        return self._success(base_url, scope="api")

    def _refresh(self, params: dict[str, str], client_id: str, client_secret: str,
                 base_url: str) -> dict[str, Any]:
        self._check_client(client_id, client_secret or None)
        old = params.get("refresh_token", "")
        new_refresh: str | None = None
        with self.tokens.lock:
            if old not in self.tokens.refresh:
                raise OAuthError("invalid_grant", "expired access/refresh token")
            if self.credentials.rotate_refresh_tokens:
                new_refresh = f"5Aep861{secrets.token_urlsafe(40)}"
                self.tokens.refresh.discard(old)
                self.tokens.refresh.add(new_refresh)
        return self._success(base_url, scope="api refresh_token",
                             refresh_for=new_refresh or old, new_refresh=new_refresh)

    def _jwt(self, assertion: str, base_url: str) -> dict[str, Any]:
        creds = self.credentials
        if not assertion or not creds.jwt_public_key:
            raise OAuthError("invalid_grant", "invalid assertion")
        import jwt  # noqa: PLC0415 - only this grant needs PyJWT

        try:
            claims = jwt.decode(
                assertion, _public_key(creds.jwt_public_key), algorithms=["RS256"],
                options={"verify_exp": False, "verify_aud": False, "verify_iat": False,
                         "verify_nbf": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        if claims.get("iss") != creds.client_id:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if claims.get("sub") != creds.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")
        audiences = claims.get("aud")
        if isinstance(audiences, str):
            audiences = [audiences]
        allowed = {base_url.rstrip("/"), *GENERIC_AUDIENCES}
        if not isinstance(audiences, list) or not any(
            isinstance(aud, str) and aud.rstrip("/") in allowed for aud in audiences
        ):
            raise OAuthError("invalid_grant", "audience is invalid")
        exp = claims.get("exp")
        now = time.time()
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            raise OAuthError("invalid_grant", "invalid assertion")
        if exp <= now:
            raise OAuthError("invalid_grant", "expired JWT")
        if exp > now + JWT_MAX_LIFETIME_S:
            raise OAuthError("invalid_grant", "invalid assertion")
        return self._success(base_url, scope="api", signed=False)

    def _success(self, base_url: str, *, scope: str | None = None, refresh_for: str | None = None,
                 new_refresh: str | None = None, signed: bool = True) -> dict[str, Any]:
        faults = self.faults
        body: dict[str, Any] = {}
        if not faults.omit_access_token:
            body["access_token"] = self.tokens.issue(refresh_for)
        if new_refresh:
            body["refresh_token"] = new_refresh
        identity = f"https://login.salesforce.com/id/{self.org_id}/{USER_ID}"
        if signed:
            issued_at = str(int(time.time() * 1000))
            digest = hmac.new(self.credentials.client_secret.encode(),
                              (identity + issued_at).encode(), hashlib.sha256).digest()
            body["signature"] = base64.b64encode(digest).decode()
            body["issued_at"] = issued_at
        if scope:
            body["scope"] = scope
        instance_url = base_url if faults.instance_url is None else faults.instance_url
        body.update({"instance_url": instance_url, "id": identity, "token_type": "Bearer"})
        return body


def org_id_18(org_id: str) -> str:
    """The 18-character form of an organization Id (key prefix 00D), or ValueError."""
    key = parse_id(org_id)
    if key is None or not key.startswith("00D"):
        raise ValueError(f"not an organization Id (15 or 18 characters, starting 00D): "
                         f"{org_id!r}")
    return to_18(key)


def _public_key(pem: str) -> Any:
    """Accept either a bare public key or an X.509 certificate, as an org's connected app does."""
    if "BEGIN CERTIFICATE" not in pem:
        return pem
    from cryptography import x509  # noqa: PLC0415 - only certificates need it

    return x509.load_pem_x509_certificate(pem.encode()).public_key()


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """Decode `Authorization: Basic base64(id:secret)`; anything else yields None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None
