"""/metrics from the proxy as a process: under gunicorn, every worker's requests in one sum."""
from __future__ import annotations

import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.ops.test_metrics import samples, value
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

REQUESTS = 24


@pytest.mark.parametrize("how", ["waitress", "gunicorn", "wsgi"])
def test_a_scrape_counts_every_worker(tmp_path, how):
    with FakeServerCpp("llamacpp", n_slots=4) as fake, \
            ProxyProcess(fake.url, tmp_path / "proxy.log", how=how,
                         args=["--workers", "2"] if how != "waitress" else []) as proxy:
        for _ in range(REQUESTS):  # a connection each: the kernel spreads them over workers
            response = requests.post(proxy.url + "/v1/completions", timeout=10,
                                     headers={"Connection": "close"},
                                     json={"prompt": "the cat", "max_tokens": 3})
            assert response.status_code == 200
            assert float(response.headers["x-oai-proxy-overhead-ms"]) >= 0
        for _ in range(6):  # whichever worker answers, the sum is the same
            scrape = requests.get(proxy.url + "/metrics", timeout=10,
                                  headers={"Connection": "close"})
            figures = samples(scrape.text)
            assert value(figures, "oai_proxy_requests_total", route="/v1/completions",
                         model="default", status="200", key="") == REQUESTS
            assert value(figures, "oai_proxy_tokens_total", model="default",
                         kind="completion") == 3 * REQUESTS
            assert value(figures, "oai_proxy_upstream_up", model="default",
                         upstream=fake.url) == 1
