"""A server's command line as it is shown: secret-bearing flags' values blanked."""

from __future__ import annotations

import pytest

from proxy.servers.commandline import redacted, scrubbed, secrets, shown


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param(
            ["llama-server", "-m", "/m/a.gguf", "-c", "8192"],
            ["llama-server", "-m", "/m/a.gguf", "-c", "8192"],
            id="nothing-secret",
        ),
        pytest.param(
            ["s", "--api-key", "sk-1234567", "--port", "80"],
            ["s", "--api-key", "***", "--port", "80"],
            id="api-key",
        ),
        pytest.param(["s", "--api-key=sk-1234567"], ["s", "--api-key=***"], id="api-key-equals"),
        pytest.param(
            ["s", "--api-key-file", "/etc/k"], ["s", "--api-key-file", "***"], id="api-key-file"
        ),
        pytest.param(["s", "--hf-token", "hf_abc"], ["s", "--hf-token", "***"], id="hf-token"),
        pytest.param(["s", "--ssl-key-file=/k.pem"], ["s", "--ssl-key-file=***"], id="ssl-key"),
        pytest.param(["s", "--db-password", "p"], ["s", "--db-password", "***"], id="password"),
        pytest.param(
            ["s", "--client_secret", "x"], ["s", "--client_secret", "***"], id="underscored"
        ),
        pytest.param(["s", "--API-KEY", "x"], ["s", "--API-KEY", "***"], id="any-case"),
        pytest.param(
            ["s", "-np", "4", "--keep", "16", "--top-k", "40"],
            ["s", "-np", "4", "--keep", "16", "--top-k", "40"],
            id="keep-and-top-k",
        ),
        pytest.param(
            ["s", "--api-key", "--not-a-flag"],
            ["s", "--api-key", "***"],
            id="value-that-looks-like-a-flag",
        ),
        pytest.param(["s", "--api-key"], ["s", "--api-key"], id="flag-without-value"),
        pytest.param(
            ["sh", "-c", "exec server --api-key sk-1234567 --port 80"],
            ["sh", "-c", "exec server --api-key *** --port 80"],
            id="shell-script",
        ),
        pytest.param(
            ["s", "--api-key", "two words"], ["s", "--api-key", "***"], id="value-with-a-space"
        ),
    ],
)
def test_secret_flags_values_are_blanked(command, expected):
    assert redacted(command) == tuple(expected)
    assert shown(command) == " ".join(expected)


def test_long_values_are_blanked_in_free_text_too():
    command = [
        "s",
        "--api-key",
        "SOMESECRET",
        "--max-tokens",
        "64",
        "--hf-token=hf_longer_one",
        "-c",
        "x --token sk-0123456789",
    ]
    hidden = secrets(command)
    assert set(hidden) == {"SOMESECRET", "hf_longer_one", "sk-0123456789"}
    assert [len(value) for value in hidden] == sorted(map(len, hidden), reverse=True)
    output = "listening with SOMESECRET after 64 tokens, hf_longer_one"
    assert scrubbed(output, hidden) == "listening with *** after 64 tokens, ***"
