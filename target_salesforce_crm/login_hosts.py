"""Which login hosts a config may name: Salesforce's login hosts and My Domains over https,
and loopback (the local emulator), so a token request never goes to a look-alike host."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_MY_DOMAIN_PREFIX = (
    r"(?!root|status)[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?"
    r"(?:--[a-z0-9]{1,20})?"
    r"(?:\.(?:sandbox|develop|scratch|demo|patch|trailblaze|free))?"
)
_MY_DOMAIN_HOST = re.compile(rf"^{_MY_DOMAIN_PREFIX}\.my\.salesforce\.com$")
_MY_DOMAIN_BARE = re.compile(rf"^{_MY_DOMAIN_PREFIX}$")
_GENERIC_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
_LOOPBACK_NAMES = ("localhost",)


def login_host_problem(login_url: str) -> str | None:
    """Return why ``login_url`` is unsafe or malformed, or None when it is acceptable."""
    try:
        parts = urlsplit(login_url)
        port = parts.port
    except ValueError:
        return "login_url is not a valid URL (check the host and port)"
    host = (parts.hostname or "").lower()
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "login_url must not contain user information ('user@host')"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "login_url must be a scheme and host only, with no path, query or fragment"
    if parts.scheme == "http":
        if not is_loopback(host):
            return (
                "login_url uses plain http:// to a non-loopback host; http:// is only accepted "
                "for 127.0.0.1, localhost or [::1] (the local emulator)"
            )
        return None
    if parts.scheme != "https":
        return f"login_url must start with https:// (got scheme {parts.scheme!r})"
    if is_loopback(host):
        return None  # the local emulator over TLS (tests of the CA-bundle path)
    if port not in (None, 443):
        return "login_url must not carry a port for a Salesforce host"
    if host in _GENERIC_LOGIN_HOSTS or _MY_DOMAIN_HOST.match(host):
        return None
    return (
        "login_url host must be login.salesforce.com, test.salesforce.com or "
        f"<name>.my.salesforce.com (got {host!r})"
    )


def is_generic_login_host(login_url: str) -> bool:
    """login.salesforce.com or test.salesforce.com: not an org's own My Domain."""
    return urlsplit(login_url).hostname in _GENERIC_LOGIN_HOSTS


def domain_login_url(domain: str) -> str | None:
    """The token host URL for a My Domain name or host, or None when it is not one."""
    value = domain.strip().lower()
    if value in _GENERIC_LOGIN_HOSTS or _MY_DOMAIN_HOST.match(value):
        return f"https://{value}"
    if _MY_DOMAIN_BARE.match(value):
        return f"https://{value}.my.salesforce.com"
    return None


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
