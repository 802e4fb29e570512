"""Settings: historic defaults, CLI > env > default, API keys, validation, --help."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.config.settings import Settings, setting_fields, unescape

HISTORIC_DEFAULTS = {
    "chat_prompt": "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant follows the given rules no matter what.\\n",
    "user_name": "\\nUSER: ",
    "ai_name": "\\nASSISTANT: ",
    "system_name": "\\nASSISTANT's RULE: ",
    "stop": "</s>",
    "llama_api": ("http://127.0.0.1:8080",),
    "host": "127.0.0.1",
    "port": 8081,
    "api_key": (),
}


def settings_from(argv=(), **environ) -> Settings:
    """Build settings from flags and an explicit environment (never ``os.environ``)."""
    return Settings.from_args(list(argv), environ)


@pytest.mark.parametrize(
    ("name", "expected"), list(HISTORIC_DEFAULTS.items()), ids=list(HISTORIC_DEFAULTS)
)
def test_defaults_are_the_historic_ones(name, expected):
    assert settings_from().flat()[name] == expected


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        pytest.param([], {}, "auto", id="nothing-given"),
        pytest.param(
            ["--user-name", "\\nUSER: "], {}, "historic", id="a-historic-flag-even-at-its-default"
        ),
        pytest.param(["--chat-prompt", "Be nice.\\n"], {}, "historic", id="chat-prompt"),
        pytest.param([], {"PROXY_AI_NAME": "\\nBOT: "}, "historic", id="a-historic-variable"),
        pytest.param(["--system-name", "x"], {}, "historic", id="system-name"),
        pytest.param(["--stop", "###"], {}, "auto", id="stop-alone-keeps-the-models"),
        pytest.param(
            ["--chat-template", "chatml", "--ai-name", "x"],
            {},
            "chatml",
            id="a-named-template-wins",
        ),
        pytest.param(
            ["--ai-name", "x"], {"PROXY_CHAT_TEMPLATE": "auto"}, "auto", id="auto-named-wins"
        ),
    ],
)
def test_the_default_template_is_the_models_own_unless_historic_flags_are_given(
    argv, environ, expected
):
    assert settings_from(argv, **environ).prompts.chat_template == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "auto"),
        ({"user_name": "x"}, "historic"),
        ({"user_name": "\\nUSER: "}, "auto"),
        ({"chat_template": "llama3", "ai_name": "x"}, "llama3"),
    ],
    ids=["nothing", "historic-value", "historic-at-its-default", "named"],
)
def test_settings_made_in_code_read_historic_values_the_same_way(fields, expected):
    assert Settings.of(**fields).prompts.chat_template == expected


def test_from_env_without_variables_equals_the_dataclass_defaults():
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(
    ("argv", "environ", "name", "expected"),
    [
        pytest.param([], {}, "port", 8081, id="default"),
        pytest.param([], {"PROXY_PORT": "9000"}, "port", 9000, id="env-beats-default"),
        pytest.param(["--port", "9100"], {"PROXY_PORT": "9000"}, "port", 9100, id="cli-beats-env"),
        pytest.param(
            ["--llama-api", "http://gpu:8080"],
            {"PROXY_LLAMA_API": "http://cpu:8080"},
            "llama_api",
            ("http://gpu:8080",),
            id="cli-beats-env-url",
        ),
        pytest.param(
            [],
            {"PROXY_LLAMA_API": "http://cpu:8080"},
            "llama_api",
            ("http://cpu:8080",),
            id="env-url",
        ),
        pytest.param(
            ["--llama-api", "http://a:1", "http://b:2"],
            {},
            "llama_api",
            ("http://a:1", "http://b:2"),
            id="replicas",
        ),
        pytest.param(
            [],
            {"PROXY_LLAMA_API": "http://a:1, http://b:2"},
            "llama_api",
            ("http://a:1", "http://b:2"),
            id="env-replicas",
        ),
        pytest.param(
            [], {"PROXY_UPSTREAM_TIMEOUT": "30.5"}, "upstream_timeout", 30.5, id="env-float"
        ),
        pytest.param(
            [],
            {"PROXY_CORS_ORIGINS": "http://a, http://b"},
            "cors_origins",
            ("http://a", "http://b"),
            id="env-tuple",
        ),
        pytest.param(
            ["--cors-origins", "http://c"],
            {"PROXY_CORS_ORIGINS": "http://a"},
            "cors_origins",
            ("http://c",),
            id="cli-beats-env-tuple",
        ),
        pytest.param(
            ["--user-name", "\\nHuman: "], {}, "user_name", "\\nHuman: ", id="escapes-kept-raw"
        ),
        pytest.param([], {"PROXY_STOP": ""}, "stop", "", id="env-empty-stop"),
    ],
)
def test_precedence(argv, environ, name, expected):
    assert settings_from(argv, **environ).flat()[name] == expected


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        pytest.param([], {"PROXY_API_KEY": "k1"}, ("k1",), id="env-one"),
        pytest.param([], {"PROXY_API_KEY": "k1, k2,,k3 "}, ("k1", "k2", "k3"), id="env-comma-list"),
        pytest.param(["--api-key", "a", "b"], {}, ("a", "b"), id="cli-several"),
        pytest.param(["--api-key", "a"], {"PROXY_API_KEY": "env-key"}, ("a",), id="cli-beats-env"),
        pytest.param([], {"PROXY_API_KEY": ""}, (), id="env-empty-means-none"),
    ],
)
def test_api_keys(argv, environ, expected):
    assert settings_from(argv, **environ).access.api_key == expected


def test_api_key_file_adds_keys(tmp_path):
    key_file = tmp_path / "keys.txt"
    key_file.write_text("file-1\n\n  file-2  \n", encoding="utf-8")
    settings = settings_from(["--api-key", "cli", "--api-key-file", str(key_file)])
    assert settings.access.api_key == ("cli", "file-1", "file-2")


def test_api_key_file_from_env(tmp_path):
    key_file = tmp_path / "keys.txt"
    key_file.write_text("file-1\n", encoding="utf-8")
    settings = settings_from(PROXY_API_KEY="env-1", PROXY_API_KEY_FILE=str(key_file))
    assert settings.access.api_key == ("env-1", "file-1")


def test_missing_api_key_file_is_a_clean_error(tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    with pytest.raises(SystemExit) as excinfo:
        settings_from(["--api-key-file", str(missing)])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "--api-key-file" in err
    assert str(missing) in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        pytest.param(["--llama-api", "localhost:8080"], {}, "--llama-api", id="url-no-scheme"),
        pytest.param(["--llama-api", "ftp://host"], {}, "--llama-api", id="url-bad-scheme"),
        pytest.param([], {"PROXY_LLAMA_API": "http://"}, "--llama-api", id="env-url-no-host"),
        pytest.param(["--port", "0"], {}, "--port", id="port-0"),
        pytest.param(["--port", "65536"], {}, "--port", id="port-too-big"),
        pytest.param(["--threads", "0"], {}, "--threads", id="threads-0"),
        pytest.param(["--workers", "0"], {}, "--workers", id="workers-0"),
        pytest.param(["--max-choices", "0"], {}, "--max-choices", id="max-choices-0"),
        pytest.param(
            ["--max-image-pixels", "0"], {}, "--max-image-pixels", id="max-image-pixels-0"
        ),
        pytest.param(["--max-tools", "0"], {}, "--max-tools", id="max-tools-0"),
        pytest.param(["--max-containers", "0"], {}, "--max-containers", id="max-containers-0"),
        pytest.param(["--max-schema-size", "0"], {}, "--max-schema-size", id="max-schema-size-0"),
        pytest.param(["--max-nesting", "0"], {}, "--max-nesting", id="max-nesting-0"),
        pytest.param([], {"PROXY_MAX_NESTING": "900"}, "recursion limit", id="max-nesting-900"),
        pytest.param(["--connect-timeout", "0"], {}, "--connect-timeout", id="timeout-0"),
        pytest.param(["--api-key", " "], {}, "--api-key", id="blank-key"),
        pytest.param(["--port", "http"], {}, "--port", id="port-not-int"),
        pytest.param(["--server", "nginx"], {}, "--server", id="cli-bad-choice"),
    ],
)
def test_invalid_settings_exit_with_a_message(argv, environ, message, capsys):
    with pytest.raises(SystemExit) as excinfo:
        settings_from(argv, **environ)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"PROXY_PORT": "http"}, id="port"),
        pytest.param({"PROXY_THREADS": "many"}, id="threads"),
        pytest.param({"PROXY_UPSTREAM_TIMEOUT": "soon"}, id="timeout"),
    ],
)
def test_env_value_of_the_wrong_type_names_the_variable(environ):
    with pytest.raises(SystemExit) as excinfo:
        settings_from(**environ)
    (name,) = environ
    assert name in str(excinfo.value.code)


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"PROXY_LOG_LEVEL": "loud"}, id="log-level"),
        pytest.param({"PROXY_SERVER": "nginx"}, id="server"),
        pytest.param({"PROXY_BACKEND": "chatgpt"}, id="backend"),
    ],
)
def test_env_value_outside_the_choices_is_rejected(environ):
    with pytest.raises(SystemExit):
        settings_from(**environ)


@pytest.mark.parametrize("flag", ["--connect-timeout", "--upstream-timeout"])
def test_nan_timeout_is_rejected(flag):
    with pytest.raises(SystemExit):
        settings_from([flag, "nan"])


def test_help_lists_every_flag_with_its_env_var(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps help text at the terminal width
    with pytest.raises(SystemExit) as excinfo:
        settings_from(["--help"])
    assert excinfo.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for _, spec in setting_fields():
        assert "--" + spec.name.replace("_", "-") in out
        assert "PROXY_" + spec.name.upper() in out


def test_help_never_prints_keys_from_the_environment(capsys):
    with pytest.raises(SystemExit):
        settings_from(
            ["--help"],
            PROXY_API_KEY="client-secret-1,client-secret-2",
            PROXY_LLAMA_API_KEY="upstream-secret",
        )
    out = capsys.readouterr().out
    assert "PROXY_API_KEY" in out
    assert "secret" not in out


def test_help_shows_env_values_of_plain_settings(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit):
        settings_from(["--help"], PROXY_PORT="9123")
    assert "9123" in capsys.readouterr().out


def test_repr_never_shows_keys():
    settings = settings_from(["--api-key", "client-secret"], PROXY_LLAMA_API_KEY="upstream-secret")
    assert settings.access.api_key == ("client-secret",)
    assert settings.upstream.llama_api_key == "upstream-secret"
    text = repr(settings)
    assert "secret" not in text
    assert "llama_api=" in text


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().serving.port = 1


def test_sections_hold_each_setting_once_under_its_own_name():
    names = [spec.name for _, spec in setting_fields()]
    assert len(names) == len(set(names)) == 83
    settings = Settings.of(port=9000, chat_template="chatml", max_queue=3)
    assert (settings.serving.port, settings.prompts.chat_template, settings.limits.max_queue) == (
        9000,
        "chatml",
        3,
    )
    assert Settings.of(**settings.flat()) == settings


def test_an_unknown_setting_is_named():
    with pytest.raises(TypeError, match="unknown settings: prot"):
        Settings.of(prot=9000)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("\\nUSER: ", "\nUSER: ", id="leading"),
        pytest.param("rules.\\n", "rules.\n", id="trailing"),
        pytest.param("a\\nb\\nc", "a\nb\nc", id="several"),
        pytest.param("no escapes", "no escapes", id="none"),
        pytest.param("", "", id="empty"),
        pytest.param("tab\\t", "tab\\t", id="only-newline-escapes"),
        pytest.param("real\nnewline", "real\nnewline", id="real-newline-kept"),
    ],
)
def test_unescape(raw, expected):
    assert unescape(raw) == expected


def test_historic_chat_prompt_unescapes_to_one_trailing_newline():
    assert unescape(Settings().prompts.chat_prompt).endswith("no matter what.\n")
    assert unescape(Settings().prompts.ai_name) == "\nASSISTANT: "
