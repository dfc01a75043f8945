"""The one redactor: URLs and text with their credentials masked, so no secret reaches an error or a log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

MASK = "***"

# query parameters whose values are secrets (matched as words inside the parameter name)
SECRET_WORDS = ("password", "passwd", "pwd", "pw", "pass", "secret", "token", "key", "auth", "sig",
                "credential", "session", "access", "cookie")
_SECRET_NAME = re.compile(r"(?:^|[^a-z])(?:" + "|".join(SECRET_WORDS) + r")|(?:" + "|".join(
    word for word in SECRET_WORDS if len(word) > 3) + ")", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


@dataclass(frozen=True)
class UrlParts:
    """A URL split at its credentials, tolerant of a password with unencoded `/ # ? [ ] @`."""

    scheme: str
    user: str | None        # decoded
    password: str | None    # decoded
    location: str           # host[:port][/path][?query][#fragment], as written

    @property
    def host_and_port(self) -> str:
        return re.split(r"[/?#]", self.location, maxsplit=1)[0]

    @property
    def path(self) -> str:
        rest = self.location[len(self.host_and_port):]
        return re.split(r"[?#]", rest, maxsplit=1)[0]

    @property
    def query(self) -> str:
        rest = self.location[len(self.host_and_port) + len(self.path):]
        return rest[1:].split("#", 1)[0] if rest.startswith("?") else ""


_HOST = re.compile(r"(?:[A-Za-z0-9._~%\-]*|\[[0-9A-Fa-f:.]+\])(?::\d*)?")


def split_url(url: str) -> UrlParts:
    """Split `scheme://user:password@location`. The credentials end at the last `@` that is followed by
    a host, so a password may hold `/ # ? [ ] @ :` unencoded (the way people paste them); an `@` in a
    query value must then be percent-encoded."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return UrlParts("", None, None, url)
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) >= 0:
        location = rest[at + 1:]
        if _HOST.fullmatch(re.split(r"[/?#]", location, maxsplit=1)[0]):
            user, colon, password = rest[:at].partition(":")
            return UrlParts(scheme, unquote(user), unquote(password) if colon else None, location)
    return UrlParts(scheme, None, None, rest)


def is_secret_name(name: str) -> bool:
    """Whether a query parameter or header name looks like it carries a secret."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """The URL with its password and secret-looking query values replaced by ***."""
    parts = split_url(url)
    if not parts.scheme:
        return url
    userinfo = ""
    if parts.user is not None or parts.password is not None:
        userinfo = quote(parts.user or "", safe="") + (f":{MASK}" if parts.password is not None else "") + "@"
    location = parts.location
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        masked = "&".join(f"{quote(k, safe='')}={MASK if is_secret_name(k) else quote(v, safe='')}"
                          for k, v in pairs)
        location = location.replace(f"?{parts.query}", f"?{masked}", 1)
    return f"{parts.scheme}://{userinfo}{location}"


def redact_text(text: str, *urls: str | None) -> str:
    """Text with every URL in it redacted, and the passwords of `urls` masked wherever they appear
    (drivers repeat them in their own words)."""
    for url in urls:
        if not url:
            continue
        parts = split_url(url)
        secrets = [parts.password] + [v for k, v in parse_qsl(parts.query) if is_secret_name(k)]
        for secret in filter(None, secrets):
            if len(secret) >= 3:   # masking a 1-2 character password would garble every message
                for form in {secret, quote(secret, safe=""), quote(secret)}:
                    text = text.replace(form, MASK)
            else:
                text = text.replace(url, redact_url(url))
    return _URL_IN_TEXT.sub(_redact_match, text)


def _redact_match(match: re.Match) -> str:
    # punctuation closing a sentence ("... to URL: refused") is the message's, not the URL's last value
    url = match.group()
    stripped = url.rstrip(".,;:!?)")
    return redact_url(stripped) + url[len(stripped):]
