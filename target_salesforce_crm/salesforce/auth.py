"""OAuth 2.0 token grants against the login host; one shared, thread-safe token.

Salesforce returns no ``expires_in``: a token is used until an API call answers 401, then
``refresh()`` re-runs the grant once for everyone holding that stale token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from target_salesforce_crm.salesforce.errors import (
    AuthenticationError,
    RetriesExhausted,
    TlsVerificationFailed,
)
from target_salesforce_crm.salesforce.retry import Backoff

LOGGER = logging.getLogger("target-salesforce-crm")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME_SECONDS = 180
TOKEN_ATTEMPTS = 4  # a login host that stays unreachable is a config problem: fail fast

# Which credential a user should look at, by flow and OAuth error code.
_HINTS = {
    "invalid_client_id": "check client_id (the connected app's consumer key; a new app can "
    "take a few minutes to propagate)",
    "invalid_client": "check client_secret (the connected app's consumer secret)",
    "unsupported_grant_type": "check auth_flow and that the connected app allows this flow",
}
_GRANT_HINTS = {
    "password": "check username, password and security_token (and that the org still allows "
    "the username-password flow)",
    "client_credentials": "check that domain is the org's My Domain and that the connected app "
    "enables the client credentials flow with a Run As user",
    "jwt": "check username, private_key and that the connected app is pre-authorised for the "
    "user and holds the matching certificate",
    "refresh_token": "check refresh_token (it may be expired or revoked)",
}


@dataclass(eq=False)
class Token:
    """An access token; ``accepted`` counts calls it authorised (a token that never worked
    and is refused is a configuration problem, one that worked and is refused has expired)."""

    access_token: str
    instance_url: str
    accepted: int = 0


class TokenProvider:
    """Holds the current access token and obtains a new one when asked."""

    def __init__(
        self,
        login_url: str,
        auth_flow: str,
        credentials: Mapping[str, str],
        session: requests.Session,
        timeout: tuple[float, float],
    ) -> None:
        self.login_url = login_url.rstrip("/")
        self.auth_flow = auth_flow
        self._credentials = dict(credentials)
        self._session = session
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._refresh_token = self._credentials.get("refresh_token")
        self.grants = 0
        self.identity_url: str | None = None  # the token response's `id` (names org and user)

    def secrets(self) -> list[str]:
        """Every secret value this provider knows, for redaction."""
        values = list(self._credentials.values())
        if self._refresh_token:
            values.append(self._refresh_token)
        if self._token:
            values.append(self._token.access_token)
        return values

    def token(self) -> Token:
        with self._lock:
            if self._token is None:
                self._token = self._grant()
            return self._token

    def refresh(self, stale: Token, *, force: bool = False) -> Token:
        """Re-run the grant unless another thread already replaced ``stale`` (``force``: a
        token that was refused right after it was issued gets a new grant regardless)."""
        with self._lock:
            current = self._token
            if current is None or current.access_token == stale.access_token or (
                force and not current.accepted
            ):
                current = self._grant()
                self._token = current
            return current

    def _grant(self) -> Token:
        url = f"{self.login_url}/services/oauth2/token"
        backoff = Backoff(attempts=TOKEN_ATTEMPTS)
        retried_code_race = False
        while True:
            body = self._grant_body()
            try:
                response = self._session.post(url, data=body, timeout=self._timeout)
            except requests.exceptions.SSLError:
                raise TlsVerificationFailed(
                    f"TLS verification of {self.login_url} failed: its certificate is not "
                    "trusted by the CA bundle in use (REQUESTS_CA_BUNDLE, if set); verification "
                    "is never switched off"
                ) from None
            except requests.RequestException as exc:
                if not backoff.sleep():
                    raise RetriesExhausted(
                        f"could not reach the token endpoint at {self.login_url} "
                        f"({type(exc).__name__}); check domain/login_url and the network"
                    ) from None
                continue
            self.grants += 1
            payload = _json_or_none(response)
            if response.status_code == 200 and payload and payload.get("access_token"):
                return self._accept(payload)
            if response.status_code == 200 and payload is not None:
                raise AuthenticationError(
                    f"the token endpoint at {self.login_url} answered HTTP 200 without an "
                    "access_token; check that login_url/domain points at a Salesforce login host"
                )
            if response.status_code >= 500 or payload is None:
                if not backoff.sleep():
                    raise RetriesExhausted(
                        f"the token endpoint kept failing (HTTP {response.status_code})"
                    )
                continue
            error = str(payload.get("error") or "unknown_error")
            description = str(payload.get("error_description") or "")
            race = error == "invalid_grant" and "authorization code" in description
            if race and not retried_code_race:
                retried_code_race = True
                continue
            if error == "rate_limit_exceeded" and backoff.sleep():
                continue
            raise AuthenticationError(self._explain(error, description))

    def _accept(self, payload: dict[str, Any]) -> Token:
        rotated = payload.get("refresh_token")
        flow = self.auth_flow
        if rotated and flow == "refresh_token" and rotated != self._refresh_token:
            self._refresh_token = str(rotated)
            LOGGER.warning(
                "Salesforce rotated the refresh token: the new one is used for this run, and the "
                "configured refresh_token is no longer valid; issue a new one before the next run "
                "(or turn off refresh token rotation for this connected app)"
            )
        instance_url = str(payload.get("instance_url") or self.login_url).rstrip("/")
        refused = refused_instance_host(instance_url, self.login_url)
        if refused is not None:
            raise AuthenticationError(
                f"the token endpoint named {refused!r} as the instance to call; the token is sent "
                "only to https:// hosts of Salesforce's own domains (or to the loopback emulator "
                "that issued it), so nothing was sent there"
            )
        if payload.get("id"):
            self.identity_url = str(payload["id"])
        return Token(access_token=str(payload["access_token"]), instance_url=instance_url)

    def _explain(self, error: str, description: str) -> str:
        hint = _HINTS.get(error) or _GRANT_HINTS[self.auth_flow]
        for secret in self.secrets():
            description = description.replace(secret, "*****")
        detail = f" ({description})" if description else ""
        return (
            f"Salesforce refused the {self.auth_flow} login at "
            f"{self.login_url}: {error}{detail}; {hint}"
        )

    def _grant_body(self) -> dict[str, str]:
        creds = self._credentials
        flow = self.auth_flow
        if flow == "password":
            return {
                "grant_type": "password",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
                "username": creds["username"],
                "password": creds["password"] + creds.get("security_token", ""),
            }
        if flow == "client_credentials":
            return {
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            }
        if flow == "refresh_token":
            body = {
                "grant_type": "refresh_token",
                "client_id": creds["client_id"],
                "refresh_token": self._refresh_token or "",
            }
            if creds.get("client_secret"):
                body["client_secret"] = creds["client_secret"]
            return body
        return {"grant_type": JWT_GRANT, "assertion": self._jwt_assertion()}

    def _jwt_assertion(self) -> str:
        import jwt  # noqa: PLC0415 - only the jwt flow needs PyJWT and cryptography

        creds = self._credentials
        claims = {
            "iss": creds["client_id"],
            "sub": creds["username"],
            "aud": jwt_audience(self.login_url),
            "exp": int(time.time()) + JWT_LIFETIME_SECONDS,
        }
        try:
            return jwt.encode(claims, creds["private_key"], algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            raise AuthenticationError(
                "private_key is not a usable RSA private key in PEM format "
                "('-----BEGIN PRIVATE KEY-----' or '-----BEGIN RSA PRIVATE KEY-----')"
            ) from None


def jwt_audience(login_url: str) -> str:
    """Salesforce wants login.salesforce.com (or test. for sandboxes) as ``aud``, even when the
    token is requested at a My Domain; a loopback emulator gets its own URL (the login host)."""
    host = (urlsplit(login_url).hostname or "").lower()
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return "https://test.salesforce.com"
    if host == "login.salesforce.com" or host.endswith(".salesforce.com"):
        return "https://login.salesforce.com"
    return login_url


# Domains Salesforce operates for org instances (commercial, government, China, Database.com);
# a host must be one of them or end in "." + one of them: whole labels, never a label's suffix.
SALESFORCE_DOMAINS = (
    "salesforce.com", "force.com", "cloudforce.com", "database.com", "visualforce.com",
    "salesforce.mil", "crmforce.mil", "sfcrmproducts.cn",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def refused_instance_host(instance_url: str, login_url: str) -> str | None:
    """The host of ``instance_url`` when a bearer token must not go there, else None.

    Accepted: https:// on a Salesforce domain, or, when ``login_url`` is a loopback http://
    emulator, that same loopback host."""
    parts = urlsplit(instance_url)
    host = (parts.hostname or "").lower().rstrip(".")
    shown = parts.netloc or instance_url
    if parts.username is not None or parts.password is not None or not host:
        return shown
    login = urlsplit(login_url)
    login_host = (login.hostname or "").lower()
    if login_host in LOOPBACK_HOSTS and parts.scheme in ("http", "https"):
        return None if host == login_host else shown
    if parts.scheme != "https":
        return shown
    if any(host == domain or host.endswith("." + domain) for domain in SALESFORCE_DOMAINS):
        return None
    return shown


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
