"""The fleet page and the playground in a real headless Chromium, over a real llama-server.

Debian's ``chromium`` and ``chromium-driver`` (installed by ``.ci/run``) driven by Selenium.
Each test leaves a screenshot of its page in its output folder; the fleet page's charts go
to ``$OAI_PROXY_SCREENSHOTS/fleet-page.png`` when that is set (``docs/`` holds the README's).
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser import headless_chromium
from tests.polling import wait_for
from tests.processes import ADMIN, ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

KEY = "playground-key"
LONG = 16000  # tokens: seconds of generation for the tiny model, for Stop to cut short
PROMPT = "the cat sat on the mat and looked at the dog, " * 4  # the same every time: cached
SERIES = {"tokens_per_s", "queued", "cache_hit_rate", "errors"}


@pytest.fixture
def browser():
    with headless_chromium("--window-size=1200,900") as driver:
        yield driver


@pytest.fixture
def server(model, logs):
    # no end of text: a generation runs until its budget, so Stop has something to stop
    with LlamaServer(
        model,
        logs / "pages-server.log",
        parallel=1,
        ctx_size=LONG + 64,
        extra_args=["--ignore-eos"],
    ) as running:
        yield running


def test_the_fleet_page_shows_a_real_upstream_up(browser, server, logs, tmp_path):
    with ProxyProcess(server.url, logs / "pages-fleet.log") as proxy:
        browser.get(proxy.url + "/")
        wait = WebDriverWait(browser, 10)
        wait.until(lambda b: "updated" in b.find_element(By.ID, "updated").text)
        # anyone sees the model and its load; its replica by number, not by address
        cells = first_row(browser)
        assert cells[1:6] == ["1", "llamacpp", "up", "0 / 1", "0"] and cells[7] == "external"
        (listed,) = requests.get(proxy.url + "/v1/models", timeout=10).json()["data"]
        does = browser.find_element(By.CSS_SELECTOR, "#fleet tbody tr .does").text
        assert does == ", ".join(listed["capabilities"])  # what the model does, as listed
        assert browser.find_element(By.ID, "status").text == "ready"
        assert server.url not in browser.page_source
        give_key(browser, ADMIN)  # the admin sees its address
        wait.until(lambda b: first_row(b)[1:2] == [server.url])
        assert browser.find_element(By.ID, "shown").text == "Shown to the admin."
        assert (
            browser.execute_script("return sessionStorage.getItem('oai-proxy-fleet-key')") == ADMIN
            and browser.execute_script("return localStorage.length") == 0
        )
        browser.save_screenshot(str(tmp_path / "fleet.png"))
        with traffic(proxy):  # across refreshes: tokens/s is counted between two looks
            wait.until(lambda b: tokens_per_second(b) > 0)
        server.stop()  # the page notices by itself, without a reload
        wait.until(lambda b: b.find_element(By.ID, "status").text == "not ready")
        assert "down" in browser.find_element(By.CSS_SELECTOR, "#fleet tbody tr").text


def test_with_keys_the_fleet_page_shows_a_key_its_models_and_anyone_the_state(
    browser, server, logs, tmp_path
):
    with ProxyProcess(server.url, logs / "pages-keyed.log", args=["--api-key", KEY]) as proxy:
        browser.get(proxy.url + "/")
        wait = WebDriverWait(browser, 10)
        wait.until(lambda b: "updated" in b.find_element(By.ID, "updated").text)
        assert browser.find_element(By.ID, "status").text == "ready"
        assert "No model is shown without a key" in first_row(browser)[0]
        give_key(browser, "not-a-key")
        wait.until(lambda b: "not accepted" in b.find_element(By.ID, "shown").text)
        assert browser.execute_script("return sessionStorage.length") == 0
        give_key(browser, KEY)
        wait.until(lambda b: first_row(b)[1:2] == ["1"])
        assert first_row(browser)[2:4] == ["llamacpp", "up"]
        assert "its models" in browser.find_element(By.ID, "shown").text
        browser.find_element(By.ID, "forget-key").click()
        wait.until(lambda b: "No model is shown" in first_row(b)[0])
        assert browser.execute_script("return sessionStorage.length") == 0


def test_the_fleet_page_shows_a_batch_come_far_and_gone_once_ended(browser, server, logs, tmp_path):
    with ProxyProcess(server.url, logs / "pages-batch.log") as proxy:  # no keys: anyone sees
        sdk = proxy.sdk()
        asked = b"".join(
            json.dumps(
                {
                    "custom_id": f"q{n}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": "tiny",
                        "max_tokens": LONG // 4,
                        "messages": [{"role": "user", "content": f"Story {n}."}],
                    },
                }
            ).encode()
            + b"\n"
            for n in range(4)
        )  # fmt: skip  (seconds of generation each: the page sees the batch come far)
        made = sdk.files.create(file=("q.jsonl", io.BytesIO(asked)), purpose="batch")
        batch = sdk.batches.create(input_file_id=made.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")  # fmt: skip
        browser.get(proxy.url + "/")
        wait = WebDriverWait(browser, 60)
        cells = wait.until(lambda b: far_along(batch_row(b)))  # between two requests none runs
        # the model as the page counts it (the flags' one model: "default"), one slot
        assert cells[:3] == [batch.id, "anonymous", "default"] and cells[6] == "1"
        assert cells[8].startswith(f"{int(cells[4]) + int(cells[5])} / 4")
        browser.save_screenshot(str(tmp_path / "batch.png"))
        wait.until(lambda b: batch_row(b)[0].startswith("No batch under way"))
        assert sdk.batches.retrieve(batch.id).request_counts.completed == 4


def far_along(cells: list):
    """The batch's row once it has answered one request and runs another, else None."""
    under_way = len(cells) == 9 and cells[3] == "in_progress"
    return cells if under_way and cells[4] != "0" and cells[6] != "0" else None


def batch_row(browser) -> list:
    return browser.execute_script(
        "return [...document.querySelector('#batches tbody tr').cells].map(c => c.textContent)"
    )


def first_row(browser) -> list:
    """The fleet table's first row, read in one go (the page replaces its rows at each look)."""
    return browser.execute_script(
        "return [...document.querySelector('#fleet tbody tr').cells].map(c => c.textContent)"
    )


def give_key(browser, key: str) -> None:
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "use-key").click()


def test_the_fleet_page_charts_each_models_last_minutes(browser, server, logs, tmp_path):
    with ProxyProcess(server.url, logs / "pages-charts.log") as proxy:
        browser.get(proxy.url + "/")  # the page's first look takes the history's first snapshot
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "no traffic yet" in b.find_element(By.ID, "charts").text)
        assert set(charts(browser)) == SERIES
        with traffic(proxy, clients=3):  # one slot for three clients: the others wait in the queue
            # a point per bucket (10 s) of the history: two take two buckets of traffic
            wait.until(
                lambda b: (
                    charts(b)["tokens_per_s"]["points"] >= 2
                    and percent(charts(b)["cache_hit_rate"]["latest"]) > 0
                )
            )
            assert all(chart["drawn"] for chart in charts(browser).values())
            text, bar = browser.execute_script(
                "const cell = document.querySelector('#fleet tbody td.slots');"
                "return [cell.textContent, cell.querySelector('.slotbar .bar .fill') !== null]"
            )
            assert re.fullmatch(r"[01] / 1", text) and bar
            folder = Path(os.environ.get("OAI_PROXY_SCREENSHOTS") or tmp_path)
            browser.save_screenshot(str(folder / "fleet-page.png"))


def test_the_playground_streams_and_stops_a_real_generation(browser, server, logs, tmp_path):
    with ProxyProcess(server.url, logs / "pages-playground.log", args=["--api-key", KEY]) as proxy:
        browser.get(proxy.url + "/playground")
        wait = WebDriverWait(browser, 20, poll_frequency=0.05)
        browser.find_element(By.ID, "key").send_keys(KEY)  # keys are on: the page asks
        browser.find_element(By.ID, "save-key").click()
        wait.until(lambda b: Select(b.find_element(By.ID, "model")).options)
        assert browser.execute_script("return sessionStorage.getItem('oai-proxy-key')") == KEY
        assert browser.execute_script("return localStorage.length") == 0

        tokens = browser.find_element(By.ID, "max-tokens")
        tokens.clear()
        tokens.send_keys("8")
        browser.find_element(By.ID, "prompt").send_keys("the cat")
        browser.find_element(By.ID, "send").click()
        answer = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#chat .assistant .figures"))
        assert "first token" in answer.text and "8 tokens" in answer.text
        browser.save_screenshot(str(tmp_path / "playground.png"))

        tokens.clear()
        tokens.send_keys(str(LONG))
        browser.find_element(By.ID, "prompt").send_keys("tell me everything")
        browser.find_element(By.ID, "send").click()
        last = (By.CSS_SELECTOR, "#chat .assistant:last-child")
        wait.until(lambda b: len(b.find_element(*last).text) > 20)  # text streams in
        assert processing(server)
        browser.find_element(By.ID, "stop").click()
        wait.until(lambda b: "stopped" in b.find_element(*last).text)
        wait_for(lambda: not processing(server), "the server to stop generating", timeout=5)
        shown = browser.find_element(*last).text
        tokens_shown = int(shown.rsplit("·", 1)[1].split()[0])
        assert 0 < tokens_shown < LONG


@contextmanager
def traffic(proxy: ProxyProcess, clients: int = 1) -> Iterator[None]:
    """Completions of one prompt, each client sending the next once its last is answered,
    until the block ends."""
    going = threading.Event()
    going.set()

    def send() -> None:
        while going.is_set():
            requests.post(
                proxy.url + "/v1/completions", timeout=30, json={"prompt": PROMPT, "max_tokens": 64}
            )

    senders = [threading.Thread(target=send) for _ in range(clients)]
    for sender in senders:
        sender.start()
    try:
        yield
    finally:
        going.clear()
        for sender in senders:
            sender.join()


def charts(browser) -> dict:
    """The first model's charts, read in one go (the page redraws them at each look): per
    series, whether its SVG is there, the points of its line and the latest value shown."""
    return browser.execute_script("""
        const found = {};
        for (const chart of document.querySelectorAll('#charts .model-charts .chart')) {
          if (chart.dataset.series in found) break;  // the next model's
          const line = chart.querySelector('svg polyline');
          found[chart.dataset.series] = {
            drawn: chart.querySelector('svg') !== null,
            points: line ? line.getAttribute('points').split(' ').length : 0,
            latest: chart.querySelector('.latest').textContent};
        }
        return found;""")


def percent(shown: str) -> float:
    return float(shown.rstrip("%")) if shown.endswith("%") else 0.0


def tokens_per_second(browser) -> float:
    """The fleet table's tokens/s, read in one go: the page replaces its rows at each look."""
    shown = browser.execute_script(
        "return document.querySelectorAll('#fleet tbody tr td')[6].textContent"
    )
    return float(shown) if shown not in ("", "–") else 0.0


def processing(server: LlamaServer) -> bool:
    slots = requests.get(server.url + "/slots", timeout=5).json()
    return any(slot["is_processing"] for slot in slots)
