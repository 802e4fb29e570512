"""Fill-in-the-middle on each kind of server.cpp, against the faithful fake servers: sent to a
current server's ``/infill``, refused by name where the server or its model cannot fill a gap."""

from __future__ import annotations

import pytest

from proxy.backends.servercpp.payload import infill_payload
from proxy.config.settings import Settings
from proxy.core.errors import InvalidRequestError
from proxy.core.types import GenerationRequest
from proxy.fleet.build import build_fleet
from tests.fakes.servercpp import FakeServerCpp
from tests.runtimes import NO_FILES

GAP = GenerationRequest(prompt="def add(a, b):\n    ", suffix="\n    return c", max_tokens=4)


def fleet_over(fake: FakeServerCpp):
    return build_fleet(Settings.of(llama_api=fake.url), NO_FILES)


def test_the_infill_body_has_the_gaps_two_sides_and_keeps_the_rest():
    payload = {"prompt": "before", "n_predict": 4, "stream": True, "id_slot": 1}
    assert infill_payload(payload, "after") == {
        "prompt": "",
        "input_prefix": "before",
        "input_suffix": "after",
        "n_predict": 4,
        "stream": True,
        "id_slot": 1,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_gap_goes_to_a_current_servers_infill(stream):
    with FakeServerCpp("llamacpp") as fake, fleet_over(fake) as fleet:
        if stream:
            text = "".join(chunk.text for chunk in fleet.stream(GAP))
        else:
            text = fleet.complete(GAP).text
        assert text == "Hello, world!"
        ((path, body, _),) = [r for r in fake.requests if r[0] in ("/infill", "/completion")]
    assert path == "/infill" and body["stream"] is stream
    assert (body["input_prefix"], body["input_suffix"], body["prompt"]) == (
        GAP.prompt,
        GAP.suffix,
        "",
    )


@pytest.mark.parametrize("kind", ["powerinfer", "llamacpp-2023"])
def test_a_server_without_infill_refuses_the_suffix_by_name(kind):
    with FakeServerCpp(kind) as fake, fleet_over(fake) as fleet:
        for ask in (fleet.complete, lambda request: list(fleet.stream(request))):
            with pytest.raises(InvalidRequestError) as raised:
                ask(GAP)
            assert raised.value.param == "suffix" and "/infill" in raised.value.message
        assert not [r for r in fake.requests if r[0] in ("/infill", "/completion")]


def test_a_model_without_fill_in_the_middle_tokens_refuses_the_suffix_by_name():
    with FakeServerCpp("llamacpp", fim=False) as fake, fleet_over(fake) as fleet:
        for ask in (fleet.complete, lambda request: list(fleet.stream(request))):
            with pytest.raises(InvalidRequestError) as raised:
                ask(GAP)
            assert raised.value.param == "suffix"
            assert "fill-in-the-middle tokens" in raised.value.message
