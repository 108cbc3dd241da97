"""redact_uri: credentials never leave the process in a URI (files, logs, tags, KFP metadata)."""

from __future__ import annotations

import pytest

from spherereid.redaction import REDACTED, redact_text, redact_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://user:SECRETxyz@127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("https://user:p%40ss@mlflow.example.com/prefix/", "https://mlflow.example.com/prefix/"),
        ("https://ghp_TOKEN123@github.com/org/data.git", "https://github.com/org/data.git"),
        ("https://x-access-token:ghs_abc@github.com/org/data", "https://github.com/org/data"),
        ("postgresql://mlflow:pw@db:5432/mlflow", "postgresql://db:5432/mlflow"),
        ("https://github.com/org/data.git?token=abc", f"https://github.com/org/data.git?token={REDACTED}"),
        ("https://h/p?ref=main&access_token=abc&x=1", f"https://h/p?ref=main&access_token={REDACTED}&x=1"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=f00",
            f"https://b.s3.amazonaws.com/k?X-Amz-Algorithm={REDACTED}&X-Amz-Credential={REDACTED}"
            f"&X-Amz-Signature={REDACTED}",
        ),
        (
            "https://acct.blob.core.windows.net/c?sv=2020&sig=abc%3D",
            f"https://acct.blob.core.windows.net/c?sv=2020&sig={REDACTED}",
        ),
        (
            "https://h/?Password=a&SECRET=b&api_key=c",
            f"https://h/?Password={REDACTED}&SECRET={REDACTED}&api_key={REDACTED}",
        ),
        ("https://h/cb#access_token=abc&state=1", f"https://h/cb#access_token={REDACTED}&state=1"),
    ],
)
def test_credentials_are_removed_and_the_rest_is_kept(uri, expected):
    assert redact_uri(uri) == expected
    assert redact_uri(expected) == expected  # idempotent: redacted forms compare equal


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:////tmp/repo/mlflow.db",
        "sqlite:///relative/mlflow.db",
        "file:///tmp/repo/mlartifacts",
        "http://127.0.0.1:5000",
        "https://github.com/org/data.git?ref=v1&path=data/raw",
        "databricks",
        "/abs/path/mlflow.db",
        "",
        "s3://bucket/prefix/artifacts",
        "https://host/a/@user/page",
    ],
)
def test_uris_without_credentials_come_back_unchanged(uri):
    assert redact_uri(uri) == uri


def test_text_quoting_uris_is_redacted_everywhere_in_it():
    text = "server http://u:SECRET@h:1/api unreachable; repo https://TOK@github.com/o/r?token=T2 failed"
    out = redact_text(text)
    assert "SECRET" not in out and "TOK" not in out and "T2" not in out
    assert out == (f"server http://h:1/api unreachable; repo https://github.com/o/r?token={REDACTED} failed")
