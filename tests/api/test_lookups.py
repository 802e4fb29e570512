"""The model a request names is looked up once, at the door, whatever the client API: every
later step (the key check, the hosted tools, the budget's hold, the fleet, the answer's name,
metrics and usage) reads the :class:`Target` it was resolved into."""

from __future__ import annotations

import pytest

from proxy.api.state import get_state
from proxy.config.catalog import Catalog

HI = [{"role": "user", "content": "hi"}]
ASKED = {
    "/v1/chat/completions": {"model": "m", "messages": HI, "max_tokens": 4},
    "/v1/completions": {"model": "m", "prompt": "hi", "max_tokens": 4},
    "/v1/messages": {"model": "m", "messages": HI, "max_tokens": 4},
    "/v1/responses": {"model": "m", "input": "hi", "max_output_tokens": 16},
    "/api/chat": {"model": "m", "messages": HI, "stream": False},
    "/api/generate": {"model": "m", "prompt": "hi", "stream": False},
    "/v1/embeddings": {"model": "m", "input": "hi"},
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("path", sorted(ASKED))
def test_one_request_looks_its_model_up_once(make_client, tmp_path, monkeypatch, path, stream):
    keys = tmp_path / "keys.toml"
    keys.write_text(
        '[[keys]]\nname = "team"\nkey = "sk-team"\nmodels = ["default"]\ntokens_per_day = 9999\n'
    )
    client = make_client(keys=str(keys), metrics="on")
    with client.application.app_context():
        ours = get_state().router.catalog  # another test's app may look up meanwhile
    found = []
    real = Catalog.find

    def find(self, name):
        if self is ours:
            found.append(name)
        return real(self, name)

    monkeypatch.setattr(Catalog, "find", find)
    body = dict(ASKED[path])
    if path != "/v1/embeddings":
        body["stream"] = stream
    answer = client.post(path, json=body, headers={"Authorization": "Bearer sk-team"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    answer.get_data()  # a stream to its end
    assert found == ["m"]
