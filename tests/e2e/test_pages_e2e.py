"""The fleet page and the playground in a real headless Chromium, over a real llama-server.

Debian's ``chromium`` and ``chromium-driver`` (installed by ``.ci/run``) driven by Selenium.
Each test leaves a screenshot of its page in its output folder.
"""
from __future__ import annotations

import shutil
import threading

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer

pytestmark = pytest.mark.e2e

KEY = "playground-key"
LONG = 16000  # tokens: seconds of generation for the tiny model, for Stop to cut short


@pytest.fixture
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,900", "--disable-background-networking"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def server(model, logs):
    # no end of text: a generation runs until its budget, so Stop has something to stop
    with LlamaServer(model, logs / "pages-server.log", parallel=1, ctx_size=LONG + 64,
                     extra_args=["--ignore-eos"]) as running:
        yield running


def test_the_fleet_page_shows_a_real_upstream_up(browser, server, logs, tmp_path):
    with ProxyProcess(server.url, logs / "pages-fleet.log") as proxy:
        browser.get(proxy.url + "/")
        wait = WebDriverWait(browser, 10)
        wait.until(lambda b: "updated" in b.find_element(By.ID, "updated").text)
        row = browser.find_element(By.CSS_SELECTOR, "#fleet tbody tr")
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        assert cells[1] == server.url and cells[2] == "llamacpp" and cells[3] == "up"
        assert cells[4] == "0 / 1" and cells[5] == "0" and cells[7] == "external"
        assert browser.find_element(By.ID, "status").text == "ready"
        browser.save_screenshot(str(tmp_path / "fleet.png"))
        generating = threading.Event()
        generating.set()

        def generate() -> None:  # across refreshes: tokens/s is counted between two looks
            while generating.is_set():
                requests.post(proxy.url + "/v1/completions", timeout=30,
                              json={"prompt": "the cat", "max_tokens": 64})

        traffic = threading.Thread(target=generate)
        traffic.start()
        try:
            wait.until(lambda b: tokens_per_second(b) > 0)
        finally:
            generating.clear()
            traffic.join()
        server.stop()  # the page notices by itself, without a reload
        wait.until(lambda b: b.find_element(By.ID, "status").text == "not ready")
        assert "down" in browser.find_element(By.CSS_SELECTOR, "#fleet tbody tr").text


def test_the_playground_streams_and_stops_a_real_generation(browser, server, logs, tmp_path):
    with ProxyProcess(server.url, logs / "pages-playground.log",
                      args=["--api-key", KEY]) as proxy:
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


def tokens_per_second(browser) -> float:
    """The fleet table's tokens/s, read in one go: the page replaces its rows at each look."""
    shown = browser.execute_script(
        "return document.querySelectorAll('#fleet tbody tr td')[6].textContent")
    return float(shown) if shown not in ("", "–") else 0.0


def processing(server: LlamaServer) -> bool:
    slots = requests.get(server.url + "/slots", timeout=5).json()
    return any(slot["is_processing"] for slot in slots)
