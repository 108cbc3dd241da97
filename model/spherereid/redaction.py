"""Credentials out of URIs: every URI that is logged, written to a file, tagged or put in KFP metadata
goes through `redact_uri` first.

A tracking URI such as `http://user:PASSWORD@host:5000` or a data repository such as
`https://TOKEN@github.com/org/data.git?token=...` carries its credentials in the userinfo and in the
query. `redact_uri` drops the userinfo (user and password: a lone "user" is often a token) and replaces
the value of every query parameter that looks like a secret with REDACTED; anything that is not a
`scheme://` URI (a path, `sqlite:////abs/mlflow.db` has no userinfo) comes back unchanged. The process
itself keeps the real URI: credentials reach MLflow from MLFLOW_TRACKING_URI (or
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) in the environment, never from a written file.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "REDACTED"
# query keys (compared in lower case) that hold secrets: exactly, by prefix, or as a part of the key
SECRET_KEYS = frozenset({"sig", "key", "pwd", "pass", "code"})
SECRET_PREFIXES = ("x-amz-", "x-goog-")
SECRET_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "auth",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "private",
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _is_secret_key(key: str) -> bool:
    key = unquote_plus(key).lower()
    return key in SECRET_KEYS or key.startswith(SECRET_PREFIXES) or any(p in key for p in SECRET_PARTS)


def _redact_query(query: str) -> str:
    """`a=1&token=x` -> `a=1&token=REDACTED` (order, spelling and other values kept)."""
    pairs = (pair.partition("=") for pair in query.split("&"))
    return "&".join(f"{k}={REDACTED}" if eq and _is_secret_key(k) else k + eq + v for k, eq, v in pairs)


def redact_uri(uri: str) -> str:
    """`uri` without userinfo and with secret-looking query (and fragment) values replaced by REDACTED;
    a string without `://` (a path) unchanged. Redacting twice gives the same string."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    authority, tail = rest[: min(ends, default=len(rest))], rest[min(ends, default=len(rest)) :]
    tail, hash_, fragment = tail.partition("#")
    path, question, query = tail.partition("?")
    out = f"{scheme}://{authority.rpartition('@')[2]}{path}"
    if question:
        out += "?" + _redact_query(query)
    if hash_:
        out += "#" + _redact_query(fragment)
    return out


def redact_text(text: str) -> str:
    """`text` with every `scheme://...` URI in it redacted (messages that quote a URI)."""
    return _URI.sub(lambda m: redact_uri(m.group(0)), text)
