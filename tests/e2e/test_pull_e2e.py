"""Models pulled by name through Ollama's API with the real ``ollama`` client, from a hub on
loopback (``HF_ENDPOINT``) by the real ``huggingface_hub`` client, then served by the proxy's
own llama-server or bundled engine: the progress lines, the list, a chat in Ollama's and
OpenAI's words, a restart with the hub gone, and a delete; under gunicorn's workers too; and
a model named in a models file that hears through the audio projector beside it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import ollama
import pytest

from tests.hubserver import Hub
from tests.polling import wait_for
from tests.processes import ProxyProcess

from .audiomodel import AUDIO_ANSWER, wav, write_audio_model
from .managed import NO_UPSTREAM, Program, program_of, servers_of
from .marks import BUNDLED, CURRENT, MANAGED, only
from .tinymodel import write_tiny_llama_gguf

pytestmark = pytest.mark.e2e

REPO = "org/tiny-GGUF"
PULLED = f"hf.co/{REPO}:Q4_K_M"
EARS = "org/ears-GGUF"  # a model that hears, beside its audio projector
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub")
    tiny = write_tiny_llama_gguf(folder / "tiny.gguf").read_bytes()
    ears, projector = write_audio_model(folder, "ears-F16")
    served = Hub(
        {
            REPO: {
                "tiny-Q4_K_M.gguf": tiny,
                "tiny-Q8_0.gguf": b"GGUF another quant",
                "README.md": b"",
            },
            EARS: {
                "ears-F16.gguf": ears.read_bytes(),
                "mmproj-ears-F16.gguf": projector.read_bytes(),
            },  # fmt: skip
        }
    ).start()
    yield served
    served.stop()


def proxy_of(program: Program, hub: Hub, home: Path, logs: Path, *args: str) -> ProxyProcess:
    """A proxy whose one model is a server it does not run (and that names no other), that
    pulls from ``hub`` into ``home``."""
    models = home / "models.toml"
    models.write_text(f'[models.elsewhere]\nupstreams = ["{NO_UPSTREAM}"]\n')
    return ProxyProcess(
        NO_UPSTREAM,
        logs / f"pull-{home.name}.log",
        args=[*program.args, "--config", str(models), "--server-args", "-c 512 -np 1", *args],
        env={**program.env, "HF_ENDPOINT": hub.url, "HF_HOME": str(home / "hf"), "HOME": str(home)},
    )


@only(CURRENT, BUNDLED, why=MANAGED)
def test_a_model_is_pulled_listed_served_kept_and_deleted(program, hub, tmp_path, logs):
    with proxy_of(program, hub, tmp_path, logs) as proxy:
        client = proxy.ollama()
        progress = list(client.pull(PULLED, stream=True))
        statuses = [line.status for line in progress]
        assert statuses[0] == "pulling manifest"
        assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
        files = [line for line in progress if line.digest]
        assert files and all(line.status == f"pulling {line.digest[7:19]}" for line in files)
        assert files[-1].completed == files[-1].total == len(hub.repos[REPO]["tiny-Q4_K_M.gguf"])
        print("\n".join(line.model_dump_json(exclude_none=True) for line in progress))

        assert PULLED in [model.model for model in client.list().models]
        assert client.chat(model=PULLED, messages=MESSAGES, options={"num_predict": 4}).message
        chat = proxy.sdk().chat.completions.create(
            model=f"hf:{REPO}:Q4_K_M", messages=MESSAGES, max_tokens=4
        )
        assert chat.choices[0].message.content is not None
        assert not hub.downloads("tiny-Q8_0.gguf")  # the tag picked its file alone

    hub.stop()  # a restart serves what was pulled, from the cache
    try:
        with proxy_of(program, hub, tmp_path, logs) as proxy:
            client = proxy.ollama()
            assert PULLED in [model.model for model in client.list().models]
            assert client.generate(model=PULLED, prompt="hi", options={"num_predict": 4}).response
            assert client.delete(PULLED).status == "success"
            assert PULLED not in [model.model for model in client.list().models]
            with pytest.raises(ollama.ResponseError) as gone:
                client.chat(model=PULLED, messages=MESSAGES)
            assert gone.value.status_code == 404
            wait_for(lambda: not servers_of(proxy), "the deleted model's server to stop")
    finally:
        hub.start()
    blobs = list((tmp_path / "hf").rglob("blobs/*"))
    assert blobs == []  # its files went with it


@pytest.mark.parametrize(
    "name, says",
    [
        ("llama3", "'llama3' is no model on a hub"),
        ("hf.co/org", "is not a hub reference of the form"),
        ("hf.co/org/missing:Q4_K_M", "hf:org/missing is not on the hub"),
        (f"hf.co/{REPO}:Q2_K", "no GGUF file fits the quant tag 'Q2_K'"),
    ],
)
def test_what_cannot_be_pulled_is_said_in_ollamas_words(hub, tmp_path, logs, name, says):
    with proxy_of(Program((), {}), hub, tmp_path, logs) as proxy:
        with pytest.raises(ollama.ResponseError) as refused:
            list(proxy.ollama().pull(name, stream=True))
        assert says in refused.value.error
        assert PULLED not in [model.model for model in proxy.ollama().list().models]


def test_under_gunicorn_every_worker_serves_the_pulled_model(hub, tmp_path, logs):
    with proxy_of(
        Program((), {}), hub, tmp_path, logs, "--server", "gunicorn", "--workers", "2"
    ) as proxy:
        assert proxy.ollama().pull(PULLED).status == "success"
        # the workers start afresh with it (a client's next connection, not one it kept
        # open, reaches them); each connection may reach either worker
        wait_for(
            lambda: all(PULLED in listed(proxy) for _ in range(6)),
            "every worker to list the pulled model",
            timeout=60,
        )
        for _ in range(4):
            assert proxy.ollama().chat(model=PULLED, messages=MESSAGES, options={"num_predict": 2})
        assert proxy.ollama().delete(PULLED).status == "success"
        wait_for(
            lambda: all(PULLED not in listed(proxy, [PULLED]) for _ in range(6)),
            "every worker to forget the deleted model",
            timeout=60,
        )


def listed(proxy, meanwhile: Sequence[str] = ()) -> list:
    """The models one worker lists; ``meanwhile`` while a worker that is starting afresh
    tells the client to come again (503), as it does until its successor serves."""
    try:
        return [model.model for model in proxy.ollama().list().models]
    except ollama.ResponseError as error:
        if error.status_code != 503:
            raise
        return list(meanwhile)


def test_a_models_file_names_a_model_on_the_hub_under_gunicorn(hub, tmp_path, logs):
    models = tmp_path / "models.toml"
    models.write_text(f'[models.tiny]\nmodel = "hf:{REPO}:Q4_K_M"\nargs = ["-c", "512"]\n')
    proxy = ProxyProcess(
        NO_UPSTREAM,
        logs / "pull-models-file.log",
        how="wsgi",
        env={
            "PROXY_CONFIG": str(models),
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HOME": str(tmp_path),
        },
    )
    with proxy:
        chat = proxy.sdk().chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4)
        assert chat.choices[0].message.content is not None
    assert "fetching hf:org/tiny-GGUF:Q4_K_M for tiny" in proxy.log()


@only(CURRENT, why="an audio projector, which current llama-server loads")
def test_a_model_that_hears_comes_from_the_hub_with_its_audio_projector(kind, hub, tmp_path, logs):
    """As a vision projector does: the one beside the model in its repository, given to
    the server it runs, so that what it transcribes is heard."""
    models = tmp_path / "models.toml"
    models.write_text(f'[models.ears]\nmodel = "hf:{EARS}"\nargs = ["-c", "2048"]\n')
    program = program_of(kind)
    proxy = ProxyProcess(
        NO_UPSTREAM,
        logs / "pull-ears.log",
        args=[*program.args, "--config", str(models)],
        env={
            **program.env,
            "HF_ENDPOINT": hub.url,
            "HF_HOME": str(tmp_path / "hf"),
            "HOME": str(tmp_path),
        },  # fmt: skip
    )
    with proxy:
        heard = proxy.sdk().audio.transcriptions.create(
            model="ears", file=("clip.wav", wav(), "audio/wav")
        )
        listed = {model.id: model for model in proxy.sdk().models.list().data}
    assert heard.text == AUDIO_ANSWER
    assert "audio" in listed["ears"].model_extra["capabilities"]
