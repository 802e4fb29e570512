"""Finding llama-server: named, on PATH, or inside llama-cpp-python with its libraries."""
from __future__ import annotations

import pytest

from proxy.fleet.binaries import find_llama_server, from_llama_cpp_python


def test_the_wheels_server_named_by_path_still_gets_its_libraries():
    wheel = from_llama_cpp_python()
    assert wheel is not None, "CI installs llama-cpp-python built with its server"
    binary, libraries = find_llama_server(str(wheel[0]))
    assert binary == wheel[0] and libraries == wheel[1] and libraries


def test_another_binary_is_taken_as_it_is(tmp_path):
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_llama_server(str(binary)) == (binary, ())


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
    assert find_llama_server() == (binary, ())


def test_unnamed_and_not_on_path_it_is_the_wheels(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # empty
    assert find_llama_server() == from_llama_cpp_python()


def test_nowhere_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("proxy.fleet.binaries.from_llama_cpp_python", lambda: None)
    with pytest.raises(ValueError, match="install llama.cpp .* or pip install llama-cpp-python"):
        find_llama_server()
