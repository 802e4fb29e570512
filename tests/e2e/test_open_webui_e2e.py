"""Open WebUI (from PyPI, ``.ci/webui.sh``) in front of the proxy, driven in a real headless
Chromium: the proxy is both its Ollama connection and its OpenAI connection, with a key, on
current llama-server, through a tap that keeps what it asked.

The model is the tiny scripted one that sees pictures (:mod:`.visionmodel`), served with its
projector: it answers :data:`TEXT_ANSWER` to a prompt without an image and
:data:`IMAGE_ANSWER` to one with. The same model is on a hub on loopback (``HF_ENDPOINT``), for
Open WebUI's "pull a model" box, with a key that may manage models. The image test leaves its
screenshot in its output folder, and in ``$OAI_PROXY_SCREENSHOTS/open-webui.png`` when that
is set (``docs/`` holds the recipe's).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import headless_chromium
from tests.hubserver import Hub
from tests.images import picture
from tests.processes import ProxyProcess

from .llama_server import LlamaServer
from .marks import CLIENT, CURRENT, on
from .openwebui import OpenWebUI, close_release_notes
from .tap import Tap
from .visionmodel import IMAGE_ANSWER, TEXT_ANSWER, write_vision_model

pytestmark = [pytest.mark.e2e, pytest.mark.open_webui, *on(CURRENT, why=CLIENT)]

KEY = "sk-webui"
# the model as each connection lists it: Ollama's under its tag, OpenAI's by its id
MODELS = {"openai": "eyes", "ollama": "eyes:latest"}
CHATS = {"openai": "/v1/chat/completions", "ollama": "/api/chat"}
ANSWER_WAIT = 120  # seconds: Open WebUI's first chat loads its own modules
# Open WebUI offers its 36 built-in tools with every chat: some 20,000 tokens of prompt in
# the tiny model's small vocabulary
CONTEXT = 32768


PULLED = "hf.co/org/eyes-GGUF:Q4_K_M"


@dataclass(frozen=True)
class Stack:
    proxy: ProxyProcess
    tap: Tap
    webui: OpenWebUI
    hub: Hub


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple:
    return write_vision_model(tmp_path_factory.mktemp("webui-vision"))


@pytest.fixture(scope="module")
def stack(kind, files, logs, tmp_path_factory):
    """The model with its projector on a server of one kind, the proxy in front with a
    keys file, a tap, and Open WebUI pointed at the tap."""
    model, mmproj = files
    folder = tmp_path_factory.mktemp(f"open-webui-{kind}")
    hub = Hub(
        {
            "org/eyes-GGUF": {
                "eyes-Q4_K_M.gguf": model.read_bytes(),
                "mmproj-eyes-F16.gguf": mmproj.read_bytes(),
            }
        }
    ).start()
    with LlamaServer(
        model,
        logs / f"webui-eyes-{kind}.log",
        kind=kind,
        parallel=1,
        ctx_size=CONTEXT,
        extra_args=["--mmproj", str(mmproj)],
    ) as server:
        (folder / "models.toml").write_text(f'[models.eyes]\nupstreams = ["{server.url}"]\n')
        (folder / "keys.toml").write_text(
            f'[[keys]]\nname = "webui"\nkey = "{KEY}"\nmanage = true\n'
        )
        with (
            ProxyProcess(
                server.url,
                logs / f"proxy-webui-{kind}.log",
                args=[
                    "--config",
                    str(folder / "models.toml"),
                    "--keys",
                    str(folder / "keys.toml"),
                    "--server-args",
                    f"-c {CONTEXT} -np 1",
                ],
                # its pulls are named in its own cache folder, not the user's
                env={"HF_ENDPOINT": hub.url, "HF_HOME": str(folder / "hf"), "HOME": str(folder)},
            ) as proxy,
            Tap(proxy.url) as tap,
            OpenWebUI(tap.url, KEY, folder, logs / f"open-webui-{kind}.log") as webui,
        ):
            yield Stack(proxy, tap, webui, hub)
            assert "Traceback" not in proxy.log()
    hub.stop()


@pytest.fixture
def browser():
    """A headless Chromium of its own for each test: a first visit, with a new session."""
    with headless_chromium("--window-size=1280,800") as driver:
        yield driver


def open_chat(browser, stack: Stack) -> WebDriverWait:
    """A new chat on Open WebUI's page, its release notes closed; a wait for what follows."""
    browser.get(stack.webui.url + "/")
    wait = WebDriverWait(browser, ANSWER_WAIT, ignored_exceptions=(WebDriverException,))
    wait.until(lambda b: b.find_element(By.ID, "chat-input"))
    wait.until(
        lambda b: (
            close_release_notes(b)
            or b.find_element(By.ID, "model-selector-model-button").text
            not in ("", "Select a model")
        )
    )
    return wait


def close_notices(browser, wait: WebDriverWait) -> None:
    """Close the notices in the corner (\"You're now logged in.\"), for the screenshot."""
    for button in browser.find_elements(By.CSS_SELECTOR, "[data-sonner-toast] [data-close-button]"):
        try:
            button.click()
        except StaleElementReferenceException:
            pass  # the notice closed by itself meanwhile
    wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, "[data-sonner-toast]"))


def listed_models(browser, wait: WebDriverWait) -> list:
    """The models the model selector offers, as it names them."""
    browser.find_element(By.ID, "model-selector-model-button").click()
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "button[data-value]"))
    return [
        item.get_attribute("data-value")
        for item in browser.find_elements(By.CSS_SELECTOR, "button[data-value]")
    ]


def choose(browser, wait: WebDriverWait, model: str) -> None:
    """Pick ``model`` in the model selector."""
    listed_models(browser, wait)
    browser.find_element(By.CSS_SELECTOR, f'button[data-value="{model}"]').click()
    wait.until(lambda b: b.find_element(By.ID, "model-selector-model-button").text == model)


def ask(browser, wait: WebDriverWait, text: str) -> str:
    """Send ``text``; the answer as the page shows it once it is whole."""
    box = browser.find_element(By.ID, "chat-input")
    box.click()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    answer = (By.CSS_SELECTOR, ".chat-assistant #response-content-container")
    try:
        wait.until(
            lambda b: (
                b.find_element(*answer).text.strip() in (TEXT_ANSWER, IMAGE_ANSWER)
                and b.find_elements(By.CSS_SELECTOR, 'button[aria-label="Copy"]')
            )
        )
    except TimeoutException:
        pytest.fail(
            "no whole answer on the page; it shows:\n"
            + browser.find_element(By.ID, "chat-container").text[-2000:]
        )
    return browser.find_element(*answer).text.strip()


def authorized(tapped) -> bool:
    """Whether the request carried the key as the proxy takes it."""
    return tapped.headers.get("Authorization") == f"Bearer {KEY}"


def test_the_model_list_shows_the_proxys_model_from_both_connections(stack, browser):
    wait = open_chat(browser, stack)
    assert set(MODELS.values()) <= set(listed_models(browser, wait))
    for path in ("/v1/models", "/api/tags"):
        listings = stack.tap.to(path)
        assert listings and all(authorized(t) and t.status == 200 for t in listings), path


@pytest.mark.parametrize("connection", MODELS)
def test_a_chat_streams_the_models_answer(stack, browser, connection):
    wait = open_chat(browser, stack)
    choose(browser, wait, MODELS[connection])
    before = len(stack.tap.to(CHATS[connection]))
    assert ask(browser, wait, "Say hello.") == TEXT_ANSWER
    (chat,) = stack.tap.to(CHATS[connection])[before:]
    assert chat.streamed and authorized(chat) and chat.status == 200
    assert chat.body["model"] == MODELS[connection]
    assert chat.body["messages"][-1]["content"] == "Say hello."


@pytest.mark.parametrize("connection", MODELS)
def test_a_picture_is_described_by_the_vision_model(stack, browser, connection, tmp_path):
    image = tmp_path / "red-square.png"
    image.write_bytes(picture(size=(96, 96)))
    wait = open_chat(browser, stack)
    choose(browser, wait, MODELS[connection])
    before = len(stack.tap.to(CHATS[connection]))
    browser.find_element(By.CSS_SELECTOR, "input[type=file][multiple]").send_keys(str(image))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#message-input-container img"))
    assert ask(browser, wait, "What is this?") == IMAGE_ANSWER
    close_notices(browser, wait)
    browser.save_screenshot(str(tmp_path / "open-webui.png"))
    if connection == "openai" and os.environ.get("OAI_PROXY_SCREENSHOTS"):
        browser.save_screenshot(str(Path(os.environ["OAI_PROXY_SCREENSHOTS"]) / "open-webui.png"))
    (chat,) = stack.tap.to(CHATS[connection])[before:]
    assert chat.streamed and authorized(chat) and chat.status == 200
    assert chat.body["model"] == MODELS[connection]
    question = chat.body["messages"][-1]
    if connection == "openai":  # the picture as an image_url part beside the question
        kinds = [part["type"] for part in question["content"]]
        assert "image_url" in kinds and "text" in kinds
        (part,) = [p for p in question["content"] if p["type"] == "image_url"]
        assert part["image_url"]["url"].startswith("data:image/png;base64,")
    else:  # Ollama's images beside the text
        assert len(question["images"]) == 1 and "What is this?" in question["content"]


def test_a_model_pulled_in_the_model_selector_is_served(stack, browser):
    wait = open_chat(browser, stack)
    browser.find_element(By.ID, "model-selector-model-button").click()
    search = wait.until(lambda b: b.find_element(By.ID, "model-search-input"))
    search.send_keys(PULLED)
    offer = wait.until(
        lambda b: [
            option
            for option in b.find_elements(By.CSS_SELECTOR, "[id^=model-option-]")
            if "Ollama" in option.text or "Pull" in option.text
        ]
    )
    offer[0].click()
    wait.until(lambda b: any(b'"success"' in t.answer for t in stack.tap.to("/api/pull")))
    (pull,) = stack.tap.to("/api/pull")
    assert pull.body["name"] == PULLED and authorized(pull) and pull.status == 200
    lines = [json.loads(line) for line in bytes(pull.answer).decode().splitlines()]
    assert lines[0] == {"status": "pulling manifest"} and lines[-1] == {"status": "success"}
    assert any(line.get("total") and line.get("completed") == line["total"] for line in lines)
    assert stack.hub.downloads("mmproj-eyes-F16.gguf") == [""]  # the projector came with it
    wait = open_chat(browser, stack)  # a fresh page lists the models anew
    choose(browser, wait, PULLED)
    assert ask(browser, wait, "Say hello.") == TEXT_ANSWER
    (chat,) = [t for t in stack.tap.to("/api/chat") if t.body.get("model") == PULLED]
    assert chat.status == 200 and authorized(chat)
