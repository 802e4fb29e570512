"""Paths as people type them: from the folder they were written for, ``~`` expanded."""

import os

import pytest

from proxy.config.files import (
    names_a_file,
    resolved,
    resolved_arguments,
    resolved_command_line,
    resolved_template,
)
from proxy.config.settings import Settings

HOME = os.path.expanduser("~")


@pytest.mark.parametrize(
    "path, folder, expected",
    [
        ("smol.gguf", "/work", "/work/smol.gguf"),
        ("models/smol.gguf", "/work", "/work/models/smol.gguf"),
        ("../smol.gguf", "/work/here", "/work/smol.gguf"),
        ("./smol.gguf", "/work", "/work/smol.gguf"),
        ("/abs/smol.gguf", "/work", "/abs/smol.gguf"),
        ("~/smol.gguf", "/work", f"{HOME}/smol.gguf"),
        ("hf:org/repo:Q4_K_M", "/work", "hf:org/repo:Q4_K_M"),
        ("hf.co/org/repo", "/work", "hf.co/org/repo"),
        ("", "/work", ""),
    ],
)
def test_a_path_is_taken_from_its_folder(path, folder, expected):
    assert resolved(path, folder) == expected


@pytest.mark.parametrize(
    "value, is_file",
    [
        ("chatml", False),
        ("auto", False),
        ("historic", False),
        ("llama3", False),
        ("my.jinja", True),
        ("templates/x", True),
        ("~/t.j2", True),
    ],
)
def test_a_template_is_a_file_when_it_looks_like_one(value, is_file):
    assert names_a_file(value) is is_file
    assert resolved_template(value, "/m") == (resolved(value, "/m") if is_file else value)


def test_the_arguments_that_name_files_are_resolved():
    present = {"/m/mm.gguf", "/m/lora"}
    arguments = ["-c", "4096", "--mmproj", "mm.gguf", "--lora", "lora", "./x.bin", "-fa", "on"]
    assert resolved_arguments(arguments, "/m", exists=present.__contains__) == (
        "-c",
        "4096",
        "--mmproj",
        "/m/mm.gguf",
        "--lora",
        "/m/lora",
        "/m/x.bin",
        "-fa",
        "on",
    )
    line = resolved_command_line(
        "--mmproj 'my mm.gguf' -np 2", "/m", {"/m/my mm.gguf"}.__contains__
    )
    assert line == "--mmproj '/m/my mm.gguf' -np 2"


def test_the_command_lines_paths_are_taken_from_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mm.gguf").write_bytes(b"GGUF")
    settings = Settings.from_args(
        [
            "--model",
            "smol.gguf",
            "--config",
            "~/models.toml",
            "--log-dir",
            "logs",
            "--llama-server",
            "bundled",
            "--chat-template",
            "chatml",
            "--server-args",
            "--mmproj mm.gguf -c 512",
        ],
        environ={},
    )
    assert settings.models.model == str(tmp_path / "smol.gguf")
    assert settings.models.config == f"{HOME}/models.toml"
    assert settings.servers.log_dir == str(tmp_path / "logs")
    assert settings.servers.llama_server == "bundled"
    assert settings.prompts.chat_template == "chatml"
    assert settings.servers.server_args == f"--mmproj {tmp_path / 'mm.gguf'} -c 512"


def test_the_variables_paths_are_taken_from_the_working_folder_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"PROXY_USAGE_DB": "usage.sqlite3", "PROXY_MODEL": "hf:o/r"})
    assert settings.stores.usage_db == str(tmp_path / "usage.sqlite3")
    assert settings.models.model == "hf:o/r"
