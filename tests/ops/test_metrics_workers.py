"""/metrics from the proxy as a process: under gunicorn, every worker's requests in one sum."""

from __future__ import annotations

import pytest
import requests

from tests.fakes.servercpp import FakeServerCpp
from tests.ops.test_metrics import samples, value
from tests.polling import wait_for
from tests.processes import ProxyProcess

pytestmark = pytest.mark.live

REQUESTS = 24
MOST_REQUESTS = 500


def counted(proxy: ProxyProcess) -> float:
    scrape = requests.get(proxy.url + "/metrics", timeout=10, headers={"Connection": "close"})
    return value(
        samples(scrape.text),
        "oai_proxy_requests_total",
        route="/v1/completions",
        model="default",
        status="200",
        key="",
    )


def counters_written(folder) -> int:
    """How many processes have counted requests in prometheus_client's folder."""
    return len({path.stem.rpartition("_")[2] for path in folder.glob("counter_*.db")})


@pytest.mark.parametrize("how", ["waitress", "gunicorn", "granian", "wsgi"])
def test_a_scrape_counts_every_worker(tmp_path, how):
    folder = tmp_path / "metrics"  # named, so the test can see which workers counted
    folder.mkdir()
    workers = 2 if how != "waitress" else 1
    with (
        FakeServerCpp("llamacpp", n_slots=4) as fake,
        ProxyProcess(
            fake.url,
            tmp_path / "proxy.log",
            how=how,
            env={"PROMETHEUS_MULTIPROC_DIR": str(folder)} if workers > 1 else None,
            args=["--workers", "2"] if workers > 1 else [],
        ) as proxy,
    ):
        sent = 0
        # a connection each: the kernel hands them to whichever worker takes it first, so
        # go on until every worker has answered some (and at least REQUESTS in all)
        while sent < REQUESTS or (workers > 1 and counters_written(folder) < workers):
            assert sent < MOST_REQUESTS, "one worker took every connection"
            response = requests.post(
                proxy.url + "/v1/completions",
                timeout=10,
                headers={"Connection": "close"},
                json={"prompt": "the cat", "max_tokens": 3},
            )
            assert response.status_code == 200
            assert float(response.headers["x-oai-proxy-overhead-ms"]) >= 0
            sent += 1
        # a request is counted as its answer's last byte leaves: the last may still be
        wait_for(lambda: counted(proxy) == sent, "every request to be counted")
        for _ in range(6):  # whichever worker answers, the sum is the same
            scrape = requests.get(
                proxy.url + "/metrics", timeout=10, headers={"Connection": "close"}
            )
            figures = samples(scrape.text)
            assert (
                value(
                    figures,
                    "oai_proxy_requests_total",
                    route="/v1/completions",
                    model="default",
                    status="200",
                    key="",
                )
                == sent
            )
            assert (
                value(figures, "oai_proxy_tokens_total", model="default", kind="completion")
                == 3 * sent
            )
            assert value(figures, "oai_proxy_upstream_up", model="default", upstream=fake.url) == 1
