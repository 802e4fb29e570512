"""Open WebUI's microphone, "read aloud" and image generation against the proxy, as the
recipe in docs/clients-and-apis.md sets them: its speech-to-text, text-to-speech and image
engines all the proxy's OpenAI connection, with a key. Open WebUI (from PyPI,
``.ci/webui.sh``) is asked through its own API, as its buttons ask it: it sends the audio it
was given to a model that hears on current llama-server (:mod:`.audiomodel`), the text to
read to the tests' echo engine behind the proxy, which keeps what it is sent, and the
picture to draw to stable-diffusion.cpp's sd-server (:mod:`.sdmodel`); and its page for
pictures is driven in Chromium."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import pytest
import requests
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import headless_chromium
from tests.processes import ProxyProcess

from .audiomodel import AUDIO_ANSWER, wav, write_audio_model
from .llama_server import LlamaServer
from .marks import CLIENT, CURRENT, on
from .openwebui import OpenWebUI, close_release_notes
from .refusing import EchoServer
from .sd_server import SdServer
from .sdmodel import write_sd_model

pytestmark = [pytest.mark.e2e, pytest.mark.open_webui, *on(CURRENT, why=CLIENT)]

KEY = "sk-webui"
MODELS = """
[models.ears]
upstreams = ["{ears}"]
[models.voice]
backend = "openai"
upstreams = ["{echo}/v1"]
upstream_model = "echo-voice"
endpoints = ["speech"]
[models.painter]
backend = "sdserver"
upstreams = ["{sd}"]
"""


@dataclass(frozen=True)
class Stack:
    proxy: ProxyProcess
    echo: EchoServer
    sd: SdServer
    webui: OpenWebUI
    token: str

    def post(self, path: str, **kwargs) -> requests.Response:
        signed = {"Authorization": f"Bearer {self.token}"}
        return requests.post(self.webui.url + path, timeout=120, headers=signed, **kwargs)


@pytest.fixture(scope="module")
def stack(kind, logs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("open-webui-speech")
    model, projector = write_audio_model(folder)
    with (
        LlamaServer(model, logs / "webui-ears.log", ctx_size=2048,
                    extra_args=["--mmproj", str(projector)]) as ears,
        EchoServer(logs / "webui-echo.log") as echo,
        SdServer(write_sd_model(folder / "sdxs.gguf"), logs / "webui-sd-server.log") as sd,
    ):  # fmt: skip
        (folder / "models.toml").write_text(MODELS.format(ears=ears.url, echo=echo.url, sd=sd.url))
        (folder / "keys.toml").write_text(f'[[keys]]\nname = "webui"\nkey = "{KEY}"\n')
        args = ["--config", str(folder / "models.toml"), "--keys", str(folder / "keys.toml")]
        with ProxyProcess(ears.url, logs / "proxy-webui-speech.log", args=args) as proxy:
            engines = {  # the recipe's settings for the three buttons
                "AUDIO_STT_ENGINE": "openai", "AUDIO_STT_MODEL": "ears",
                "AUDIO_STT_OPENAI_API_BASE_URL": proxy.url + "/v1",
                "AUDIO_STT_OPENAI_API_KEY": KEY,
                "AUDIO_TTS_ENGINE": "openai", "AUDIO_TTS_MODEL": "voice",
                "AUDIO_TTS_VOICE": "alloy", "AUDIO_TTS_OPENAI_API_BASE_URL": proxy.url + "/v1",
                "AUDIO_TTS_OPENAI_API_KEY": KEY,
                "ENABLE_IMAGE_GENERATION": "True", "IMAGE_GENERATION_ENGINE": "openai",
                "IMAGE_GENERATION_MODEL": "painter", "IMAGE_SIZE": "64x64",
                "IMAGES_OPENAI_API_BASE_URL": proxy.url + "/v1", "IMAGES_OPENAI_API_KEY": KEY,
            }  # fmt: skip
            with OpenWebUI(proxy.url, KEY, folder, logs / "open-webui-speech.log",
                           env=engines) as webui:  # fmt: skip
                signed = requests.post(
                    webui.url + "/api/v1/auths/signin",
                    timeout=60,
                    json={"email": "admin@localhost", "password": "admin"},
                )
                signed.raise_for_status()
                yield Stack(proxy, echo, sd, webui, signed.json()["token"])
            assert "Traceback" not in proxy.log()


def test_the_microphone_is_transcribed_by_the_model_that_hears(stack):
    answer = stack.post("/api/v1/audio/transcriptions",
                        files={"file": ("speech.wav", wav(1.0), "audio/wav")})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == AUDIO_ANSWER


def test_read_aloud_is_the_speech_engines_audio_through_the_proxy(stack):
    stack.echo.clear()
    stack.echo.release()  # the engine sends all it has at once
    answer = stack.post("/api/v1/audio/speech", json={"input": "The build is green."})
    assert answer.status_code == 200, answer.text
    assert answer.content == hashlib.sha256(b"The build is green.").digest() * 128 * 4
    (sent,) = stack.echo.received()
    assert (sent["body"]["model"], sent["body"]["voice"]) == ("echo-voice", "alloy")


def test_a_picture_is_drawn_by_sd_server_through_the_proxy(stack):
    answer = stack.post("/api/v1/images/generations", json={"prompt": "a red fox in snow"})
    assert answer.status_code == 200, answer.text
    (shown,) = answer.json()
    kept = requests.get(stack.webui.url + shown["url"], timeout=30,
                        headers={"Authorization": f"Bearer {stack.token}"})  # fmt: skip
    direct = requests.post(stack.sd.url + "/v1/images/generations", timeout=60,
                           json={"prompt": "a red fox in snow", "size": "64x64"})  # fmt: skip
    assert kept.content == base64.b64decode(direct.json()["data"][0]["b64_json"])


def test_the_image_playground_in_the_browser_draws_on_sd_server(stack):
    """Open WebUI's own page for pictures, driven in Chromium: its Run button's picture is
    the one sd-server draws."""
    prompt = "a fox seen in a browser"
    with headless_chromium("--window-size=1280,800") as browser:
        browser.get(stack.webui.url + "/playground/images")
        wait = WebDriverWait(browser, 120, ignored_exceptions=(WebDriverException,))
        box = (By.CSS_SELECTOR, 'textarea[placeholder="Describe the image..."]')
        wait.until(lambda b: close_release_notes(b) or b.find_element(*box))
        browser.find_element(*box).send_keys(prompt)
        browser.find_element(By.XPATH, "//button[normalize-space()='Run']").click()
        shown = (By.CSS_SELECTOR, '#images-container img[src*="/api/v1/files/"]')
        source = wait.until(lambda b: b.find_element(*shown)).get_attribute("src")
    kept = requests.get(source, timeout=30, headers={"Authorization": f"Bearer {stack.token}"})
    direct = requests.post(stack.sd.url + "/v1/images/generations", timeout=60,
                           json={"prompt": prompt, "size": "64x64"})  # fmt: skip
    assert kept.content == base64.b64decode(direct.json()["data"][0]["b64_json"])
