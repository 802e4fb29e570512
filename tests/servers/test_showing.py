"""A server's command line as it is shown: secret-bearing flags' values blanked."""

from __future__ import annotations

import pytest

from proxy.servers.showing import LONGEST, redacted, scrubbed, secrets, shown, why_it_failed


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


MISSING = "/srv/models/smol.gguf"
CURRENT_MISSING = f"""\
0.00.002.876 I cmn  common_param: common_params_print_info: verbosity = 3
0.00.003.059 W srv  llama_server: security: no API key is set and CORS allows all origins
0.00.004.851 I srv    load_model: loading model '{MISSING}'
0.00.005.016 E gguf_init_from_file: failed to open GGUF file '{MISSING}' (No such file or directory)
0.00.005.109 E llama_model_load: error loading model: llama_model_loader: failed to load model
0.00.005.122 E llama_model_load_from_file_impl: failed to load model
0.00.005.186 E srv    load_model: failed to load model, '{MISSING}'
0.00.005.616 E srv  llama_server: exiting due to model loading error
"""
CURRENT_CORRUPT = """\
0.00.004.189 I srv    load_model: loading model '/tmp/x/corrupt.gguf'
0.00.004.337 E gguf_init_from_reader: bad GGUF version: 0
0.00.004.346 E gguf_init_from_reader: failed to read header
0.00.004.848 E srv  llama_server: exiting due to model loading error
"""
NOT_GGUF = "0.00.004.587 E gguf_init_from_reader: invalid magic characters: 'hell', expected 'GGUF'"
OLD_MISSING = f"""\
{{"timestamp":1795622901,"level":"INFO","function":"main","line":2268,"message":"build info"}}
error loading model: failed to open {MISSING}: No such file or directory
llama_load_model_from_file: failed to load model
{{"timestamp":1795622901,"level":"ERROR","function":"load_model","message":"unable to load model"}}
"""
OLD_CORRUPT = """\
gguf_init_from_file: failed to read header
error loading model: llama_model_loader: failed to load model from /tmp/x/corrupt.gguf
"""
OLD_ONLY_JSON = '{"level":"ERROR","function":"load_model","message":"unable to load model"}\n'
BIND = "0.00.001.000 E srv start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8085"
ENGINE_ARGS = "bundled llama.cpp engine: the following arguments are required: -m/--model\n"


@pytest.mark.parametrize(
    "output, reason",
    [
        (CURRENT_MISSING, "failed to open GGUF file 'smol.gguf' (No such file or directory)"),
        (CURRENT_CORRUPT, "bad GGUF version: 0"),
        (NOT_GGUF, "invalid magic characters: 'hell', expected 'GGUF'"),
        ("error: invalid argument: --foo\n", "invalid argument: --foo"),
        ("error: unknown argument: --foo\nusage: ./server [options]\n", "unknown argument: --foo"),
        (OLD_MISSING, "error loading model: failed to open smol.gguf: No such file or directory"),
        (OLD_CORRUPT, "failed to read header"),
        (OLD_ONLY_JSON, "unable to load model"),
        (BIND, "couldn't bind HTTP server socket, hostname: an address, port: 8085"),
        (ENGINE_ARGS, "bundled llama.cpp engine: the following arguments are required: -m/--model"),
        ("loading\nall good\n", ""),
        ("", ""),
        ('{"level":"INFO","message":"failed? no, info"}\n{not json\n', ""),
    ],
)
def test_the_first_error_is_the_reason_with_no_path_or_address(output, reason):
    assert why_it_failed(output) == reason


def test_a_long_reason_is_cut():
    reason = why_it_failed("E: error " + "x" * 1000)
    assert len(reason) == LONGEST and reason.endswith("…")
