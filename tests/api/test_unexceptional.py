"""An answer served as asked raises no exception on its way: each one raised and caught
costs it a microsecond or more (a missing attribute of ``g`` raises two, a header the
client did not send two more), on every request."""

from __future__ import annotations

import sys

import pytest
from werkzeug.test import EnvironBuilder

# how generators and context managers end, not failures
CONTROL_FLOW = (StopIteration, GeneratorExit)

HI = [{"role": "user", "content": "hi"}]
ASKED = [
    pytest.param("/v1/chat/completions", {"model": "m", "messages": HI}, id="chat"),
    pytest.param("/v1/messages", {"model": "m", "max_tokens": 8, "messages": HI}, id="messages"),
    pytest.param("/v1/responses", {"model": "m", "input": "hi", "store": False}, id="responses"),
    pytest.param("/api/chat", {"model": "m", "messages": HI}, id="ollama"),
]


def raised(app, path: str, body: dict, headers: dict) -> list:
    """The exceptions other than control flow raised while ``app`` serves the request, its
    answer read to the end and closed."""
    environ = EnvironBuilder(path=path, method="POST", json=body, headers=headers).get_environ()
    found = []

    def trace(frame, event, arg):
        if event == "exception" and not issubclass(arg[0], CONTROL_FLOW):
            found.append(f"{arg[0].__name__} in {frame.f_code.co_filename}:{frame.f_lineno}")
        return trace

    statuses = []
    sys.settrace(trace)
    try:
        answer = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        for _ in answer:
            pass
        answer.close()
    finally:
        sys.settrace(None)
    assert statuses[0].startswith("200"), statuses
    return sorted(set(found))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("path", "body"), ASKED)
def test_an_answer_raises_nothing_on_its_way(make_client, path, body, stream):
    app = make_client(api_key=("sk-one",)).application
    headers = {"Authorization": "Bearer sk-one"}
    raised(app, path, {**body, "stream": stream}, headers)  # once: what is made on first use
    assert raised(app, path, {**body, "stream": stream}, headers) == []
