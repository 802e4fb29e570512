"""What the model saw, through the inspector, on real servers of every kind.

An ``openai`` SDK tool loop through a prompt the proxy renders (``--chat-template chatml``,
the way every old server is served): each turn keeps the prompt sent upstream, the text the
model wrote with its call's syntax before the proxy read it, and, once the system prompt
changes, the character and the token where the prompt parted from the cache the turn before
left. Then the inspector's page in Chromium: the list, that turn, and its replay in the
playground.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser import headless_chromium
from tests.processes import ADMIN, ProxyProcess

from .llama_server import LlamaServer
from .marks import only

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
SYSTEM = "You help with the weather."
CHANGED = "You help with the rain."
QUESTION = "What is the weather in Paris?"


@pytest.fixture(scope="module")
def proxy(kind, model, logs):
    with (
        LlamaServer(model, logs / f"inspector-{kind}.log", kind=kind, parallel=1) as server,
        ProxyProcess(
            server.url,
            logs / f"proxy-inspector-{kind}.log",
            args=["--chat-template", "chatml", "--capture", "on"],
        ) as running,
    ):
        yield server, running


def tool_loop(proxy: ProxyProcess) -> list:
    """A call, its result and an answer; then the same with the system prompt changed."""
    sdk = proxy.sdk()
    asked = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    called = sdk.chat.completions.create(
        model="tiny", messages=asked, tools=[WEATHER], tool_choice="required", max_tokens=200
    )
    (call,) = called.choices[0].message.tool_calls[:1]
    answered = asked + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'},
    ]
    sdk.chat.completions.create(model="tiny", messages=answered, tools=[WEATHER], max_tokens=8)
    changed = [{"role": "system", "content": CHANGED}] + answered[1:]
    sdk.chat.completions.create(model="tiny", messages=changed, tools=[WEATHER], max_tokens=8)
    return [call]


def test_each_turn_shows_its_prompt_its_raw_call_and_where_the_cache_was_left(proxy):
    server, running = proxy
    (call,) = tool_loop(running)
    first, second, third = running.exchanges()

    # the prompt the model saw is the one that went upstream, rendered by the proxy
    for turn in (first, second, third):
        assert turn["prompt_by"] == "proxy" and turn["upstream_route"] == "/completion"
        assert turn["upstream_body"]["prompt"] == turn["prompt"]
        assert turn["replica"] and turn["evaluated_tokens"] > 0
    assert SYSTEM in first["prompt"] and QUESTION in first["prompt"]
    # what the model wrote before the proxy read the call out of it, beside what the SDK got
    assert "get_weather" in first["raw"] and first["raw"] != call.function.arguments
    assert json.loads(call.function.arguments) == json.loads(
        first["answer"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    )
    # the turns are linked; the second goes on from the first's prompt
    assert second["previous"] == first["id"] and third["previous"] == second["id"]
    assert second["divergence"]["character"] >= len(first["prompt"])
    # the third changed its system prompt: everything from the change on was read again
    parted = third["divergence"]
    changed_at = third["prompt"].index(CHANGED) + len("You help with the ")
    assert parted["character"] == changed_at and not parted["reused_all"]
    assert parted["before"].startswith("weather.") and parted["now"].startswith("rain.")
    tokens = requests.post(
        server.url + "/tokenize", json={"content": third["prompt"][:changed_at]}, timeout=30
    ).json()["tokens"]
    assert parted["token"] == len(tokens)
    print(json.dumps({"divergence": parted, "raw": first["raw"]}, indent=1))


@only("llamacpp", why="the page is the same over every kind")
def test_the_inspector_page_shows_a_turn_and_replays_it_in_the_playground(proxy, tmp_path):
    _, running = proxy
    tool_loop(running)
    third = running.exchanges()[-1]
    with headless_chromium("--window-size=1280,1400") as browser:
        browser.get(running.url + "/admin/exchanges")
        wait = WebDriverWait(browser, 30, poll_frequency=0.05)
        browser.find_element(By.ID, "key").send_keys(ADMIN)
        browser.find_element(By.ID, "save-key").click()
        row = wait.until(
            lambda b: b.find_element(By.CSS_SELECTOR, f"#list tbody tr[data-id='{third['id']}']")
        )
        assert "/v1/chat/completions" in row.text
        row.click()
        parted = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#parted .parted"))
        assert f"at character {third['divergence']['character']}" in parted.text
        assert f"token {third['divergence']['token']}" in parted.text
        assert browser.find_element(By.ID, "prompt").text.startswith("<|im_start|>system")
        assert "rain." in browser.find_element(By.CSS_SELECTOR, "#parted mark.now").text
        folder = Path(os.environ.get("OAI_PROXY_SCREENSHOTS") or tmp_path)
        browser.save_screenshot(str(folder / "inspector.png"))

        browser.find_element(By.ID, "replay").click()
        wait.until(lambda b: b.current_url.endswith("/playground"))
        wait.until(lambda b: Select(b.find_element(By.ID, "model")).options)
        assert browser.find_element(By.ID, "system").get_attribute("value") == CHANGED
        # the question is ready to send again, to whichever model is chosen
        assert browser.find_element(By.ID, "prompt").get_attribute("value") == QUESTION
        tokens = browser.find_element(By.ID, "max-tokens")
        tokens.clear()
        tokens.send_keys("4")
        browser.find_element(By.ID, "send").click()
        figures = wait.until(
            lambda b: b.find_element(By.CSS_SELECTOR, "#chat .assistant:last-child .figures")
        )
        assert "4 tokens" in figures.text
