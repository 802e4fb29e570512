"""Hostile files and batches: an upload declaring a gigabyte, a file of a million lines, a
line longer than a request's body may be, lines of millions of arrays or nested a thousand
deep, thousands of made-up model names, more lines than a key may have waiting, a request
naming another tenant's model, another tenant's file and batch. Each is refused, naming what
is wrong, and costs the proxy bounded memory.
"""

from __future__ import annotations

import io
import json
import socket

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.test_fuzz import json_values
from tests.hostile.conftest import ADMIN, ALICE, BOB
from tests.hostile.cost import MiB, measured
from tests.polling import wait_for

pytestmark = pytest.mark.hostile

GROWTH = 64 * MiB  # the most a probe may add to the proxy's memory
GIGABYTE = 10**9


def line(custom_id: str, model: str = "tiny", size: int = 0) -> bytes:
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "x" * size}]}
    item = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(item).encode() + b"\n"


def upload(url: str, key: str, content: bytes) -> requests.Response:
    return requests.post(
        url + "/v1/files",
        files={"file": ("lines.jsonl", io.BytesIO(content))},
        data={"purpose": "batch"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )


def batch(url: str, key: str, file_id: str) -> dict:
    made = requests.post(
        url + "/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },  # fmt: skip
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    ).json()
    shown, headers = {}, {"Authorization": f"Bearer {key}"}

    def read() -> bool:
        shown.update(requests.get(f"{url}/v1/batches/{made['id']}", headers=headers).json())
        return shown["status"] != "validating"

    wait_for(read, "the batch to be read", timeout=60)
    return shown


def test_an_upload_declaring_a_gigabyte_is_refused_before_it_is_read(gateway):
    """Larger than any body the proxy accepts (--max-file-size): refused from its header,
    before a byte of it is read (the proxy's own 413 in OpenAI's shape is tested with a
    smaller bound, tests/batches/test_views.py)."""
    head = (
        "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {ALICE}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {GIGABYTE}\r\nConnection: close\r\n\r\n"
    ).encode()

    def probe() -> bytes:
        with socket.create_connection(("127.0.0.1", gateway.proxy.port), timeout=30) as sock:
            sock.sendall(head)  # the body never comes: the header says enough
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer

    answer, cost = measured(gateway.pid, probe)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]  # waitress's own, from the header
    assert cost.growth < GROWTH, cost


def test_a_file_of_a_million_lines_is_refused_as_it_is_copied(gateway):
    content = b"{}\n" * 1_000_000
    answer, cost = measured(gateway.pid, lambda: upload(gateway.url, ALICE, content))
    assert answer.status_code == 400 and "--max-batch-lines" in answer.json()["error"]["message"]
    assert answer.json()["error"]["param"] == "file"
    assert cost.growth < GROWTH, cost


def test_a_line_longer_than_a_body_may_be_fails_its_batch_naming_the_line(gateway):
    """40 MiB: more than --max-body-size (32 MiB), which bounds what of it is ever read."""
    made = upload(gateway.url, ALICE, line("small") + line("huge", size=40 * MiB)).json()
    shown, cost = measured(gateway.pid, lambda: batch(gateway.url, ALICE, made["id"]))
    assert shown["status"] == "failed", shown
    (fault,) = shown["errors"]["data"]
    assert (fault["line"], fault["code"]) == (2, "line_too_long")
    assert cost.growth < GROWTH, cost


def test_a_request_naming_another_tenants_model_fails_the_batch(gateway):
    made = upload(gateway.url, ALICE, line("mine") + line("theirs", model="secret")).json()
    shown = batch(gateway.url, ALICE, made["id"])
    assert shown["status"] == "failed"
    (fault,) = shown["errors"]["data"]
    # alice's models are hidden: another's model is one that does not exist, to her too
    assert (fault["line"], fault["code"], fault["param"]) == (2, "model_not_found", "body.model")
    assert "does not exist" in fault["message"]


def test_another_tenants_file_and_batch_are_as_good_as_absent(gateway):
    made = upload(gateway.url, ALICE, line("mine")).json()
    shown = batch(gateway.url, ALICE, made["id"])
    as_bob = {"Authorization": f"Bearer {BOB}"}
    for path in (f"/v1/files/{made['id']}", f"/v1/files/{made['id']}/content",
                 f"/v1/batches/{shown['id']}"):  # fmt: skip
        answer = requests.get(gateway.url + path, headers=as_bob, timeout=30)
        assert answer.status_code == 404 and answer.json()["error"]["type"]
    cancel = requests.post(f"{gateway.url}/v1/batches/{shown['id']}/cancel", headers=as_bob,
                           timeout=30)  # fmt: skip
    assert cancel.status_code == 404
    listed = requests.get(gateway.url + "/v1/batches", headers=as_bob, timeout=30).json()
    assert shown["id"] not in json.dumps(listed)


def ended(url: str, key: str, batch_id: str, timeout: float = 120) -> dict:
    shown, headers = {}, {"Authorization": f"Bearer {key}"}

    def read() -> bool:
        shown.update(requests.get(f"{url}/v1/batches/{batch_id}", headers=headers).json())
        return shown["status"] in ("completed", "failed", "cancelled", "expired")

    wait_for(read, "the batch to end", timeout=timeout)
    return shown


def junk_line(custom_id: str, junk: bytes) -> bytes:
    head = json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": "tiny", "max_tokens": 1,
                                "messages": [{"role": "user", "content": "x"}]}})  # fmt: skip
    return head[:-2].encode() + b', "junk": ' + junk + b"}}\n"


def test_lines_of_millions_of_arrays_fail_their_batch_before_they_are_read(gateway):
    """Four lines of 8 MiB of ``[],`` (each under --max-body-size, each some three million
    arrays): counted before they are read, as a live body's are, and never read."""
    junk = b"[" + b"[]," * (8 * MiB // 3) + b"[]]"
    made = upload(gateway.url, ALICE, b"".join(junk_line(f"c{n}", junk) for n in range(4))).json()
    shown, cost = measured(gateway.pid, lambda: batch(gateway.url, ALICE, made["id"]))
    assert shown["status"] == "failed", shown
    faults = shown["errors"]["data"]
    assert [fault["line"] for fault in faults] == [1, 2, 3, 4]
    assert all("--max-containers" in fault["message"] for fault in faults)
    assert cost.growth < GROWTH, cost


def test_a_line_nested_a_thousand_deep_fails_its_batch_and_the_others_run(gateway):
    deep = b"[" * 1000 + b"]" * 1000
    made = upload(gateway.url, ALICE, line("fine") + junk_line("deep", deep)).json()
    shown = batch(gateway.url, ALICE, made["id"])
    assert shown["status"] == "failed"
    (fault,) = shown["errors"]["data"]
    assert (fault["line"], fault["code"], fault["param"]) == (2, "invalid_request", "body.junk")
    assert "--max-nesting" in fault["message"]
    after = upload(gateway.url, ALICE, line("after")).json()
    assert ended(gateway.url, ALICE, batch(gateway.url, ALICE, after["id"])["id"])[
        "status"] == "completed"  # fmt: skip


def test_model_names_are_the_served_ones_and_bound_what_a_batch_holds(gateway):
    """A key that may name any model (the admin's) names 5,000 that are not, each 2 KB: the
    batch fails naming the first hundred, each name cut short; its record and /metrics stay
    small."""
    names = b"".join(line(f"c{n}", model=f"m{n}-" + "x" * 2048) for n in range(5000))
    made = upload(gateway.url, ADMIN, names).json()
    shown = batch(gateway.url, ADMIN, made["id"])
    assert shown["status"] == "failed" and len(shown["errors"]["data"]) == 100
    assert {fault["code"] for fault in shown["errors"]["data"]} == {"model_not_found"}
    assert len(json.dumps(shown)) < 32 * 1024
    metrics = requests.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN}"},
                           timeout=30).text  # fmt: skip
    assert "x" * 100 not in metrics


def test_a_keys_batches_under_way_hold_a_bounded_number_of_lines(gateway):
    """Two batches of 50,000 lines fill a key's --batch-lines-per-key (100,000): a third is
    refused before it is read (where twelve held 200 MiB of the proxy's memory)."""
    full = b"".join(line(f"c{n}") for n in range(50_000))
    made = [upload(gateway.url, ALICE, full).json()["id"] for _ in range(3)]
    under_way = [batch(gateway.url, ALICE, file_id)["id"] for file_id in made[:2]]
    asked = {"input_file_id": made[2], "endpoint": "/v1/chat/completions",
             "completion_window": "24h"}  # fmt: skip
    refused = requests.post(gateway.url + "/v1/batches", json=asked,
                            headers={"Authorization": f"Bearer {ALICE}"}, timeout=30)  # fmt: skip
    assert refused.status_code == 429, refused.text
    assert "--batch-lines-per-key" in refused.json()["error"]["message"]
    for batch_id in under_way:
        requests.post(f"{gateway.url}/v1/batches/{batch_id}/cancel",
                      headers={"Authorization": f"Bearer {ALICE}"}, timeout=30)  # fmt: skip
    for batch_id in under_way:
        assert ended(gateway.url, ALICE, batch_id)["status"] == "cancelled"


FORM_TEXT = st.text(max_size=24) | st.sampled_from(["³⁶⁰⁰", "٣٦٠٠", "3600", "-1", "1e9", "\r\n"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.text(max_size=40),
    purpose=FORM_TEXT,
    anchor=st.none() | FORM_TEXT,
    seconds=st.none() | FORM_TEXT,
    content=st.binary(max_size=200),
)
def test_any_upload_is_answered_in_openais_shape(gateway, name, purpose, anchor, seconds, content):
    """Any file name (control characters, line breaks), purpose and expiry, any bytes: a
    2xx or a 4xx, never a 500, and a file kept is read back whole."""
    form = {"purpose": purpose}
    for field, value in (("expires_after[anchor]", anchor), ("expires_after[seconds]", seconds)):
        if value is not None:
            form[field] = value
    answer = requests.post(gateway.url + "/v1/files", data=form,
                           files={"file": (name or "x", io.BytesIO(content))},
                           headers={"Authorization": f"Bearer {ALICE}"}, timeout=60)  # fmt: skip
    assert answer.status_code < 500, answer.text[:300]
    assert answer.json().get("error") or answer.json().get("id")
    if answer.status_code == 200:
        kept = requests.get(f"{gateway.url}/v1/files/{answer.json()['id']}/content",
                            headers={"Authorization": f"Bearer {ALICE}"}, timeout=60)  # fmt: skip
        assert kept.status_code == 200 and kept.content == content
        requests.delete(f"{gateway.url}/v1/files/{answer.json()['id']}",
                        headers={"Authorization": f"Bearer {ALICE}"}, timeout=60)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(["/v1/batches", "/v1/messages/batches"]),
    body=st.dictionaries(
        st.sampled_from(["input_file_id", "endpoint", "completion_window", "metadata", "requests"]),
        json_values,
        max_size=5,
    ),  # fmt: skip
    id=st.text(max_size=40),
    verb=st.sampled_from(["GET", "POST cancel", "GET results", "DELETE file"]),
)
def test_any_batch_asked_of_and_any_id_named_is_answered_in_its_apis_shape(
    gateway, route, body, id, verb
):
    headers = {"Authorization": f"Bearer {ALICE}"}
    made = requests.post(gateway.url + route, json=body, headers=headers, timeout=60)
    assert made.status_code < 500, made.text[:300]
    quoted = requests.utils.quote(id, safe="")
    path = {"GET": f"{route}/{quoted}", "POST cancel": f"{route}/{quoted}/cancel",
            "GET results": f"/v1/messages/batches/{quoted}/results",
            "DELETE file": f"/v1/files/{quoted}"}[verb]  # fmt: skip
    answer = requests.request(verb.split()[0], gateway.url + path, headers=headers, timeout=60)
    assert answer.status_code < 500, answer.text[:300]
