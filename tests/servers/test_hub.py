"""Models downloaded by name with the real huggingface_hub client, from a hub on loopback."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from unittest import mock

import pytest

from proxy.config.hubref import HubReference
from proxy.config.modelsfile import parse_catalog
from proxy.servers import hub
from proxy.servers.build import download_model
from tests.hubserver import Hub

MODEL = b"GGUF" + bytes(range(256)) * 4096  # 1 MiB
LARGE = b"GGUF" + bytes(range(256))[::-1] * 65536  # 16 MiB: the client reads 10 MiB at a time
PROJECTOR = b"GGUF" + b"\x01" * 4096
REPO = {
    "smol-Q4_K_M.gguf": MODEL,
    "smol-Q8_0.gguf": LARGE,
    "mmproj-smol-F16.gguf": PROJECTOR,
    "README.md": b"# smol\n",
}


@pytest.fixture
def served(tmp_path):
    """A hub with ``org/smol`` on it, and the huggingface_hub library pointed at it with an
    empty cache of its own (its settings are read from the environment when it is loaded)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    fake = Hub({"org/smol": dict(REPO)}).start()
    environ = {"HF_ENDPOINT": fake.url, "HF_HOME": str(tmp_path / "hf")}
    with mock.patch.dict(os.environ, environ):
        for name in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE"):
            os.environ.pop(name, None)
        importlib.reload(constants)
        yield fake
        close_session()  # its kept connections go with the hub, not to the garbage collector
    importlib.reload(constants)
    fake.stop()


def test_a_quant_is_downloaded_with_its_projector_and_reused(served):
    files = hub.download(HubReference("org/smol", "Q4_K_M"))
    assert Path(files.model).read_bytes() == MODEL
    assert Path(files.projector).read_bytes() == PROJECTOR
    assert Path(files.model).name == "smol-Q4_K_M.gguf" and len(files.files) == 2
    again = hub.download(HubReference("org/smol", "Q4_K_M"))
    assert again == files
    assert len(served.downloads("smol-Q4_K_M.gguf")) == 1  # the second found it in the cache


def test_progress_is_heard_file_by_file(served):
    heard = []
    hub.download(HubReference("org/smol"), progress=lambda *event: heard.append(event))
    files = {name for name, _, _, _ in heard}
    assert files == {"smol-Q4_K_M.gguf", "mmproj-smol-F16.gguf"}
    last = [event for event in heard if event[0] == "smol-Q4_K_M.gguf"][-1]
    assert last == ("smol-Q4_K_M.gguf", hashlib.sha256(MODEL).hexdigest(), len(MODEL), len(MODEL))


def test_a_dropped_connection_is_resumed_where_it_stopped(served):
    served.drop_after["smol-Q8_0.gguf"] = 12 << 20
    files = hub.download(HubReference("org/smol", "Q8_0"))
    assert Path(files.model).read_bytes() == LARGE
    (first, resumed) = served.downloads("smol-Q8_0.gguf")
    assert first == "" and resumed.startswith("bytes=") and resumed != "bytes=0-"


def test_a_file_that_is_not_what_the_hub_says_is_refused_and_deleted(served):
    served.wrong_sha256.add("smol-Q8_0.gguf")
    with pytest.raises(hub.HubError, match="not what the hub says it is") as refused:
        hub.download(HubReference("org/smol", "Q8_0"))
    assert "deleted" in str(refused.value)
    blobs = list(Path(os.environ["HF_HOME"]).rglob("blobs/*"))
    assert all(blob.read_bytes() != LARGE for blob in blobs)


def test_the_cache_serves_when_the_hub_cannot_be_reached(served):
    files = hub.download(HubReference("org/smol", "Q4_K_M"))
    served.stop()
    assert hub.download(HubReference("org/smol", "Q4_K_M")) == files
    assert hub.cached(HubReference("org/smol", "Q4_K_M")) == files
    with pytest.raises(hub.HubError, match="cannot be reached.*not in the cache"):
        hub.download(HubReference("org/other"))
    served.start()  # for the fixture to stop


def test_offline_uses_the_cache_alone(served):
    with pytest.raises(hub.HubError, match="not in the cache"):
        hub.download(HubReference("org/smol"), offline=True)
    assert served.requests == []
    files = hub.download(HubReference("org/smol"))
    asked = len(served.requests)
    assert hub.download(HubReference("org/smol"), offline=True) == files
    assert len(served.requests) == asked


def test_a_repository_the_hub_does_not_have_is_named(served):
    with pytest.raises(hub.HubError, match="hf:org/nothing is not on the hub"):
        hub.download(HubReference("org/nothing"))


def test_a_quant_the_repository_does_not_have_names_the_files_it_has(served):
    with pytest.raises(hub.HubError, match="Q2_K.*smol-Q4_K_M.gguf"):
        hub.download(HubReference("org/smol", "Q2_K"))


def test_a_token_is_sent_when_given(served, monkeypatch):
    served.token = "hf_secret_token"
    with pytest.raises(hub.HubError):
        hub.download(HubReference("org/smol"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    assert Path(hub.download(HubReference("org/smol")).model).read_bytes() == MODEL


def test_removing_a_model_deletes_its_files(served):
    files = hub.download(HubReference("org/smol"))
    targets = [Path(path).resolve() for path in files.files]
    hub.remove(files)
    assert not any(Path(path).exists() for path in files.files + tuple(targets))
    assert hub.cached(HubReference("org/smol")) is None


@pytest.mark.parametrize(("backend", "projected"), [("servercpp", True), ("sdserver", False)])
def test_a_model_from_the_hub_is_given_its_projector_where_its_server_reads_one(
    served, backend, projected
):
    """llama-server sees or hears through the projector beside its model; sd-server has no
    such flag, and is given its model alone."""
    table = {"models": {"m": {"backend": backend, "model": "hf:org/smol"}}}
    (spec,) = parse_catalog(table, "m.toml").models
    found = download_model(spec)
    assert Path(found.managed.model).read_bytes() == MODEL
    assert found.managed.source == "hf:org/smol"
    given = found.managed.args
    assert ("--mmproj" in given) is projected
    if projected:
        assert Path(given[given.index("--mmproj") + 1]).read_bytes() == PROJECTOR


def test_a_file_a_servers_flag_names_on_the_hub_is_downloaded_for_it(served, tmp_path):
    """sd-server's VAE, say, beside a model file of this machine's: the flag is given the
    file's path in the cache, checked as a model's files are."""
    args = ["--vae", "hf:org/smol/mmproj-smol-F16.gguf", "-W", "64"]
    table = {"models": {"m": {"backend": "sdserver", "model": str(tmp_path / "sd.gguf"),
                              "args": args}}}  # fmt: skip
    (spec,) = parse_catalog(table, "m.toml").models
    found = download_model(spec)
    flag, vae, *rest = found.managed.args
    assert (flag, rest) == ("--vae", ["-W", "64"]) and Path(vae).read_bytes() == PROJECTOR
    assert found.managed.model == str(tmp_path / "sd.gguf")
    assert served.downloads("mmproj-smol-F16.gguf") and not served.downloads("smol-Q4_K_M.gguf")


def test_a_command_line_names_files_on_the_hub_for_its_flags(served):
    """A model whose parts come apart (FLUX's), each given to its flag by sd-server's own
    command line: no model file of its own."""
    line = ("sd-server --listen-port ${PORT} --diffusion-model hf:org/smol/smol-Q4_K_M.gguf "
            "--vae hf:org/smol/mmproj-smol-F16.gguf")  # fmt: skip
    (spec,) = parse_catalog({"models": {"m": {"backend": "sdserver", "cmd": line}}}, "m").models
    command = download_model(spec).managed.command
    assert command[:3] == ("sd-server", "--listen-port", "${PORT}")
    assert Path(command[command.index("--diffusion-model") + 1]).read_bytes() == MODEL
    assert Path(command[command.index("--vae") + 1]).read_bytes() == PROJECTOR


def test_a_file_the_repository_does_not_have_is_named_with_those_it_has(served, tmp_path):
    table = {"models": {"m": {"model": str(tmp_path / "m.gguf"),
                              "args": ["--lora", "hf:org/smol/lora.gguf"]}}}  # fmt: skip
    (spec,) = parse_catalog(table, "m.toml").models
    with pytest.raises(ValueError, match="hf:org/smol/lora.gguf: hf:org/smol has no such file; "
                                         "its files: .*smol-Q4_K_M.gguf"):  # fmt: skip
        download_model(spec)
