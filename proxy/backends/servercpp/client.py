"""HTTP to the upstream server, with every ``requests`` failure mapped to a proxy error."""
from __future__ import annotations

import contextlib
import json
from typing import Iterator, Optional

import requests
from requests.adapters import HTTPAdapter

from proxy.backends.servercpp.parse import stream_error
from proxy.errors import (SlotUnavailableError, UpstreamError, UpstreamTimeoutError,
                          UpstreamUnavailableError)
from proxy.ops.measure import waited, waiting

UNREACHABLE = "upstream_unreachable"  # the request never reached the server: safe to resend


def probe_ready(url: str) -> Optional[bool]:
    """Whether a server just started serves: True, False while it loads its model (current
    llama.cpp answers /health 503), None while nothing listens (old servers listen only
    once loaded, and answer /health 404)."""
    try:
        status = requests.get(url + "/health", timeout=2).status_code
    except requests.RequestException:
        return None
    return status != 503


class UpstreamClient:
    """A pooled session to one server.cpp base URL."""

    def __init__(self, base_url: str, *, api_key: str = "", pool_size: int = 64,
                 connect_timeout: float = 5.0, read_timeout: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.trust_env = False  # a local upstream: never route it through a proxy
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self._posts: dict = {}

    def get(self, path: str, *, timeout: Optional[float] = None) -> requests.Response:
        """GET without judging the status (detection reads 404s)."""
        with self.errors():
            return self.session.get(self.base_url + path, timeout=timeout or self.timeout)

    def post_json(self, path: str, body: dict) -> object:
        """POST and return the decoded JSON answer, or raise the mapped error."""
        with self.errors():
            response = self.post(path, body)
            self.raise_for_status(response)
            try:
                return response.json()
            except ValueError:
                raise UpstreamError(f"the upstream {self.base_url} answered {path} with "
                                    f"something that is not JSON") from None

    @contextlib.contextmanager
    def stream(self, path: str, body: dict) -> Iterator[Iterator[bytes]]:
        """POST and yield the raw body pieces as they arrive; leaving closes the connection.

        Closing the connection early is what tells server.cpp to stop generating.
        """
        with self.errors():
            response = self.post(path, body, stream=True)
            try:
                self.raise_for_status(response)
                yield self._pieces(response)
            finally:
                response.close()

    def post(self, path: str, body: dict, *, stream: bool = False) -> requests.Response:
        """POST ``body`` as JSON: what ``session.post(json=...)`` sends, for less CPU.

        ``Session.request`` merges every setting and parses the URL again on each call,
        which costs more than the exchange itself; the request is prepared once per path
        and copied instead.
        """
        template = self._posts.get(path)
        if template is None:
            template = self.session.prepare_request(requests.Request("POST", self.base_url + path))
            self._posts[path] = template
        request = template.copy()
        request.prepare_body(data=None, files=None, json=body)
        with waiting():
            return self.session.send(request, timeout=self.timeout, stream=stream)

    def _pieces(self, response: requests.Response) -> Iterator[bytes]:
        with self.errors():
            yield from waited(response.iter_content(chunk_size=None))

    def raise_for_status(self, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        text = response.text[:500]
        if response.status_code == 404 and "File Not Found" in text:
            # PowerInfer and llama.cpp 2023 answer a request with no free slot this way
            raise SlotUnavailableError(
                f"the upstream {self.base_url} has no free slot for the request (or does not "
                f"serve {response.request.path_url}); retry shortly, or start it with more "
                f"--parallel slots", retry_after=1)
        if response.status_code == 401:
            raise UpstreamError(f"the upstream {self.base_url} refused the proxy's key; "
                                f"set --llama-api-key to the key the server expects")
        try:
            body = json.loads(text)
        except ValueError:
            body = {"message": text.strip() or response.reason}
        error = stream_error(body, self.base_url)
        if response.status_code == 503 and not isinstance(error, UpstreamUnavailableError):
            error = UpstreamUnavailableError(f"the upstream {self.base_url} is not ready "
                                             f"({error.message}); retry shortly", retry_after=1)
        raise error

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Map connection failures and timeouts, keeping the cause."""
        try:
            yield
        except requests.exceptions.ConnectTimeout as exc:
            raise UpstreamUnavailableError(
                f"cannot connect to the upstream {self.base_url} in time: is llama-server "
                f"running? (--llama-api)", code=UNREACHABLE, retry_after=2) from exc
        except requests.exceptions.Timeout as exc:
            raise UpstreamTimeoutError(
                f"the upstream {self.base_url} did not answer in time; raise "
                f"--upstream-timeout or ask for fewer tokens") from exc
        except requests.exceptions.ConnectionError as exc:
            raise UpstreamUnavailableError(
                f"cannot reach the upstream {self.base_url}: is llama-server running and "
                f"--llama-api right?", code=UNREACHABLE, retry_after=2) from exc
        except requests.exceptions.RequestException as exc:
            raise UpstreamError(f"the exchange with the upstream {self.base_url} failed "
                                f"({type(exc).__name__})") from exc

    def close(self) -> None:
        self.session.close()
