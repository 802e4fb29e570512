"""Open WebUI's microphone, "read aloud" and image generation against the proxy, as the
recipe in docs/clients-and-apis.md sets them: its speech-to-text, text-to-speech and image
engines all the proxy's OpenAI connection, with a key. Open WebUI (from PyPI,
``.ci/webui.sh``) sends the audio it was given to a model that hears on current llama-server
(:mod:`.audiomodel`), the text to read to the tests' echo engine behind the proxy, which
keeps what it is sent, and the picture to draw to stable-diffusion.cpp's sd-server
(:mod:`.sdmodel`). Each is asked once through Open WebUI's API and once by its button,
clicked in Chromium: the microphone records a tone played as the browser's own, and the
audio of "read aloud" reaches the page's player."""

from __future__ import annotations

import base64
import json
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
from .openwebui import OpenWebUI, notes_read
from .refusing import EchoServer
from .sd_server import SdServer
from .sdmodel import write_sd_model

pytestmark = [pytest.mark.e2e, pytest.mark.open_webui, *on(CURRENT, why=CLIENT)]

KEY = "sk-webui"
MODELS = """
[models.ears]
upstreams = ["{ears}"]
[models.parrot]
backend = "openai"
upstreams = ["{echo}/v1"]
upstream_model = "echo"
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
                "AUDIO_TTS_OPENAI_PARAMS": json.dumps({"response_format": "wav"}),
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
                token = signed.json()["token"]
                notes_read(webui.url, token)
                yield Stack(proxy, echo, sd, webui, token)
            assert "Traceback" not in proxy.log()


def test_the_microphone_is_transcribed_by_the_model_that_hears(stack):
    answer = stack.post("/api/v1/audio/transcriptions",
                        files={"file": ("speech.wav", wav(1.0), "audio/wav")})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["text"] == AUDIO_ANSWER


def in_chromium(*flags: str):
    """A new Chromium of the size Open WebUI's page is laid out for."""
    return headless_chromium("--window-size=1280,800", *flags)


def open_chat(browser, stack: Stack, query: str) -> WebDriverWait:
    """Open WebUI's chat page at ``/?query``, its release notes closed, the model chosen."""
    browser.get(f"{stack.webui.url}/?{query}")
    wait = waiting(browser)
    wait.until(
        lambda b: (
            b.find_element(By.ID, "model-selector-model-button").text not in ("", "Select a model")
        )
    )
    return wait


def waiting(browser) -> WebDriverWait:
    """Waits of up to two minutes: the first answers load the engines' models."""
    return WebDriverWait(browser, 120, ignored_exceptions=(WebDriverException,))


def test_the_microphone_in_the_browser_is_transcribed_by_the_model_that_hears(stack, tmp_path):
    """Chromium records the tone it takes for its microphone as WebM (Opus), which Open
    WebUI turns into MP3 with ffmpeg, as its documentation asks; the text the proxy's audio
    model heard is written into the message box."""
    tone = tmp_path / "microphone.wav"
    tone.write_bytes(wav(3.0))
    microphone = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={tone}")  # fmt: skip
    with in_chromium(*microphone) as browser:
        wait = open_chat(browser, stack, "models=ears")
        browser.find_element(By.ID, "voice-input-button").click()
        wait.until(lambda b: "0:02" in b.find_element(By.TAG_NAME, "body").text)
        browser.find_element(By.ID, "confirm-recording-button").click()
        wait.until(lambda b: b.find_element(By.ID, "chat-input").text.strip())
        assert browser.find_element(By.ID, "chat-input").text.strip() == AUDIO_ANSWER
    kept = stack.webui.data / "cache" / "audio" / "transcriptions"  # as sent, as sent on
    assert {".webm", ".mp3"} <= {path.suffix for path in kept.iterdir()}


def test_read_aloud_is_the_speech_engines_audio_through_the_proxy(stack):
    stack.echo.clear()
    stack.echo.release()  # the engine sends all it has at once
    answer = stack.post("/api/v1/audio/speech", json={"input": "The build is green."})
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith(b"ID3")  # the engine's WAV, made MP3 by Open WebUI
    (sent,) = stack.echo.received()
    assert sent["body"] == {"model": "echo-voice", "voice": "alloy", "response_format": "wav",
                            "input": "The build is green."}  # fmt: skip


def test_read_aloud_in_the_browser_plays_the_speech_engines_audio(stack):
    """An answer's "Read Aloud" button, clicked in Chromium: the answer's text reaches the
    speech engine behind the proxy, and the page's player plays its audio to the end."""
    said = "Tests pass on main."
    stack.echo.clear()
    stack.echo.release()
    with in_chromium("--autoplay-policy=no-user-gesture-required") as browser:
        wait = open_chat(browser, stack, "models=parrot")
        box = browser.find_element(By.ID, "chat-input")
        box.click()
        box.send_keys(said)
        browser.find_element(By.ID, "send-message-button").click()
        read_aloud = (By.CSS_SELECTOR, 'button[aria-label="Read Aloud"]')
        button = wait.until(lambda b: b.find_element(*read_aloud))
        browser.execute_script(LISTEN)
        browser.execute_script("arguments[0].click()", button)  # shown on hover alone
        wait.until(lambda b: b.execute_script("return window.played.includes('ended')"))
        assert browser.execute_script("return window.played") == ["playing", "ended"]
    spoken = [sent["body"] for sent in stack.echo.received() if "voice" in sent.get("body", {})]
    assert [(body["input"], body["model"]) for body in spoken] == [(said, "echo-voice")]


LISTEN = """
window.played = [];
const player = document.getElementById("audioElement");
for (const event of ["playing", "ended", "error"])
  player.addEventListener(event, () => window.played.push(event));
"""


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
    with in_chromium() as browser:
        browser.get(stack.webui.url + "/playground/images")
        wait = waiting(browser)
        box = (By.CSS_SELECTOR, 'textarea[placeholder="Describe the image..."]')
        wait.until(lambda b: b.find_element(*box))
        browser.find_element(*box).send_keys(prompt)
        browser.find_element(By.XPATH, "//button[normalize-space()='Run']").click()
        shown = (By.CSS_SELECTOR, '#images-container img[src*="/api/v1/files/"]')
        source = wait.until(lambda b: b.find_element(*shown)).get_attribute("src")
    kept = requests.get(source, timeout=30, headers={"Authorization": f"Bearer {stack.token}"})
    direct = requests.post(stack.sd.url + "/v1/images/generations", timeout=60,
                           json={"prompt": prompt, "size": "64x64"})  # fmt: skip
    assert kept.content == base64.b64decode(direct.json()["data"][0]["b64_json"])
