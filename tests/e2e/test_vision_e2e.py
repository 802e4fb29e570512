"""Images through every dialect to a model that sees them: a tiny scripted model with its
vision projector (:mod:`.visionmodel`), which answers one text for a prompt with an image and
another for one without, and counts :data:`IMAGE_TOKENS` prompt tokens for each image.

The proxy runs the model itself from a models file (``mmproj``), on llama-server, beside the
same model without its projector; and it fronts a llama-server started with ``--mmproj`` by
hand. A model that cannot see, an old
server, a bad image: a 400 naming the field, in the client's own shape.
"""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import httpx
import ollama
import openai
import pytest
import requests

from tests.images import base64_of, data_uri, noise, picture
from tests.polling import wait_for
from tests.processes import ProxyProcess

from .llama_server import LlamaServer, find_server
from .managed import NO_UPSTREAM, admin, program_of, with_file
from .marks import CURRENT, OLD
from .visionmodel import IMAGE_ANSWER, IMAGE_TOKENS, TEXT_ANSWER, write_vision_model

pytestmark = pytest.mark.e2e

QUESTION = "What is this?"
PNG = picture()
MAX_IMAGE = 20_000  # bytes: the proxies' --max-image-size, which a noisy PNG passes


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple:
    return write_vision_model(tmp_path_factory.mktemp("vision"))


@pytest.fixture(scope="module")
def site():
    """An HTTP server on this machine with the picture at ``/cat.png``."""

    class Pictures(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/cat.png" else 404)
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Pictures)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fleet(files, tmp_path_factory, logs):
    """The proxy running ``eyes`` (the model with its projector) and ``blind`` (without),
    fetching images by URL from anywhere."""
    model, mmproj = files
    text = (
        f'default = "eyes"\n'
        f'[models.eyes]\nmodel = "{model}"\nmmproj = "{mmproj}"\n'
        f'args = ["-np", "2", "-c", "2048"]\n'
        f'[models.blind]\nmodel = "{model}"\nargs = ["-np", "1", "-c", "2048"]\n'
    )
    with with_file(
        tmp_path_factory.mktemp("vision-fleet"),
        logs,
        "vision",
        text,
        "--image-urls",
        "any",
        "--max-image-size",
        str(MAX_IMAGE),
        program=program_of(CURRENT),
    ) as proxy:
        yield proxy


def openai_chat(proxy: ProxyProcess, image: bool, model: str = "eyes", **options):
    content = [{"type": "text", "text": QUESTION}]
    if image:
        content.append({"type": "image_url", "image_url": {"url": data_uri(PNG)}})
    return proxy.sdk().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": content}],
        max_tokens=16,
        temperature=0,
        **options,
    )


def test_openai_chat_sees_the_image_and_counts_its_tokens(fleet):
    seen, unseen = openai_chat(fleet, True), openai_chat(fleet, False)
    assert (seen.choices[0].message.content, unseen.choices[0].message.content) == (
        IMAGE_ANSWER,
        TEXT_ANSWER,
    )
    # the image's parts are counted apart: OpenAI's part lists join no text around it
    assert seen.usage.prompt_tokens - unseen.usage.prompt_tokens == IMAGE_TOKENS


def test_an_openai_stream_sees_the_image(fleet):
    chunks = list(openai_chat(fleet, True, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == IMAGE_ANSWER
    assert chunks[-1].usage.prompt_tokens == openai_chat(fleet, True).usage.prompt_tokens


def anthropic_message(proxy: ProxyProcess, image: bool, model: str = "eyes"):
    content = [{"type": "text", "text": QUESTION}]
    if image:
        content.insert(
            0,
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": base64_of(PNG)},
            },
        )
    return proxy.anthropic().messages.create(
        model=model, max_tokens=16, messages=[{"role": "user", "content": content}]
    )


def test_anthropic_messages_see_the_image(fleet):
    seen, unseen = anthropic_message(fleet, True), anthropic_message(fleet, False)
    assert (seen.content[0].text, unseen.content[0].text) == (IMAGE_ANSWER, TEXT_ANSWER)
    assert prompt_tokens(seen.usage) - prompt_tokens(unseen.usage) == IMAGE_TOKENS


def prompt_tokens(usage) -> int:
    """A Messages answer's prompt: the tokens read from the cache are not its input's."""
    return usage.input_tokens + usage.cache_read_input_tokens


def test_counting_a_prompt_counts_its_image(fleet):
    def counted(image: bool) -> int:
        content = [{"type": "text", "text": QUESTION}]
        if image:
            content.insert(
                0,
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": base64_of(PNG)},
                },
            )
        return (
            fleet.anthropic()
            .messages.count_tokens(model="eyes", messages=[{"role": "user", "content": content}])
            .input_tokens
        )

    assert counted(True) - counted(False) == IMAGE_TOKENS


def responses_answer(proxy: ProxyProcess, image: bool, model: str = "eyes"):
    content = [{"type": "input_text", "text": QUESTION}]
    if image:
        content.append({"type": "input_image", "image_url": data_uri(PNG)})
    return proxy.sdk().responses.create(
        model=model,
        max_output_tokens=16,
        temperature=0,
        input=[{"role": "user", "content": content}],
    )


def test_responses_see_the_image_and_keep_a_placeholder(fleet):
    seen, unseen = responses_answer(fleet, True), responses_answer(fleet, False)
    assert (seen.output_text, unseen.output_text) == (IMAGE_ANSWER, TEXT_ANSWER)
    assert seen.usage.input_tokens - unseen.usage.input_tokens == IMAGE_TOKENS
    (item,) = fleet.sdk().responses.input_items.list(seen.id).data
    assert [part.type for part in item.content] == ["input_text", "input_image"]
    assert item.content[1].image_url is None  # the bytes are not kept
    # a turn that continues it reads the placeholder, and sees no image
    later = fleet.sdk().responses.create(
        model="eyes",
        max_output_tokens=16,
        temperature=0,
        previous_response_id=seen.id,
        input="and now?",
    )
    assert later.output_text == TEXT_ANSWER


def test_ollama_chat_and_generate_see_the_image(fleet):
    client = fleet.ollama()
    seen = client.chat(
        model="eyes",
        messages=[{"role": "user", "content": QUESTION, "images": [PNG]}],
        options={"temperature": 0},
    )
    unseen = client.chat(
        model="eyes", messages=[{"role": "user", "content": QUESTION}], options={"temperature": 0}
    )
    assert (seen.message.content, unseen.message.content) == (IMAGE_ANSWER, TEXT_ANSWER)
    assert seen.prompt_eval_count - unseen.prompt_eval_count == IMAGE_TOKENS
    generated = client.generate(
        model="eyes", prompt=QUESTION, images=[PNG], options={"temperature": 0}
    )
    assert generated.response == IMAGE_ANSWER


def prompt_usage(proxy: ProxyProcess, model: str) -> int:
    """The prompt tokens counted against the model (no key: ``anonymous``'s)."""
    rows = admin(proxy, "GET", "/usage").json()["usage"]
    return sum(row["prompt_tokens"] for row in rows if row["model"] == model)


def test_usage_counts_the_images_tokens_as_the_server_reports_them(fleet):
    before = prompt_usage(fleet, "eyes")
    answer = openai_chat(fleet, True)
    wait_for(
        lambda: prompt_usage(fleet, "eyes") - before == answer.usage.prompt_tokens,
        "the usage to count the answer's prompt, its image's tokens included",
    )


def test_langchains_chat_models_send_the_image_and_it_is_seen(fleet):
    """``ChatOpenAI`` sends an ``image_url`` part; ``ChatOllama`` turns the same part into
    Ollama's ``images``."""
    from langchain_core.messages import HumanMessage
    from langchain_ollama import ChatOllama
    from langchain_openai import ChatOpenAI

    question = HumanMessage(
        content=[
            {"type": "text", "text": QUESTION},
            {"type": "image_url", "image_url": {"url": data_uri(PNG)}},
        ]
    )
    openai_style = ChatOpenAI(
        base_url=fleet.url + "/v1",
        api_key="unused",
        model="eyes",
        max_tokens=16,
        max_retries=0,
        http_client=httpx.Client(transport=fleet.transport()),
    )
    ollama_style = ChatOllama(
        base_url=fleet.url,
        model="eyes",
        num_predict=16,
        sync_client_kwargs={"transport": fleet.transport()},
    )
    assert openai_style.invoke([question]).content == IMAGE_ANSWER
    assert ollama_style.invoke([question]).content == IMAGE_ANSWER


def test_an_image_by_url_is_fetched_when_the_operator_allows(fleet, site):
    answer = fleet.sdk().chat.completions.create(
        model="eyes",
        max_tokens=16,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": QUESTION},
                    {"type": "image_url", "image_url": {"url": site + "/cat.png"}},
                ],
            }
        ],
    )
    assert answer.choices[0].message.content == IMAGE_ANSWER
    with pytest.raises(openai.BadRequestError) as caught:
        fleet.sdk().chat.completions.create(
            model="eyes",
            max_tokens=16,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": site + "/gone.png"}}],
                }
            ],
        )
    assert caught.value.body["param"] == "messages[0].content[0].image_url.url"
    assert "404" in caught.value.body["message"]


def test_the_models_say_which_see(fleet):
    listed = {
        m["id"]: m["capabilities"]
        for m in requests.get(fleet.url + "/v1/models", timeout=30).json()["data"]
    }
    assert "vision" in listed["eyes"] and "vision" not in listed["blind"]
    openai_chat(fleet, False)  # the server has been asked: its own card now
    shown = fleet.ollama().show("eyes")
    assert "vision" in shown.capabilities and "completion" in shown.capabilities


def test_a_model_that_cannot_see_names_the_field_and_itself_in_each_shape(fleet):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_chat(fleet, True, model="blind")
    assert caught.value.body["param"] == "messages[0].content[1].image_url.url"
    assert "'blind' cannot see images" in caught.value.body["message"]
    with pytest.raises(anthropic.BadRequestError) as refused:
        anthropic_message(fleet, True, model="blind")
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert "'messages[0].content[0].source.data'" in refused.value.body["error"]["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        responses_answer(fleet, True, model="blind")
    assert caught.value.body["param"] == "input[0].content[1].image_url"
    with pytest.raises(ollama.ResponseError) as failed:
        fleet.ollama().chat(
            model="blind", messages=[{"role": "user", "content": QUESTION, "images": [PNG]}]
        )
    assert failed.value.status_code == 400
    assert "'messages[0].images[0]'" in failed.value.error and "'blind'" in failed.value.error


@pytest.mark.parametrize(
    "url, says",
    [
        pytest.param(
            "data:text/plain;base64," + base64.b64encode(b"hello").decode(),
            "not of an image",
            id="not-an-image",
        ),
        pytest.param(data_uri(PNG)[:-10], "cut short", id="truncated"),
        pytest.param(data_uri(noise()), f"larger than the {MAX_IMAGE} bytes", id="too-large"),
        pytest.param("ftp://example.com/cat.png", "data URI or an http(s) URL", id="not-http"),
    ],
)
def test_a_bad_image_is_a_400_naming_the_field_and_is_not_logged(fleet, url, says):
    response = requests.post(
        fleet.url + "/v1/chat/completions",
        timeout=60,
        json={
            "model": "eyes",
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
        },
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages[0].content[0].image_url.url"
    assert says in error["message"]
    assert url[-40:] not in fleet.log()  # the fact is logged at most, never the image


@pytest.fixture(scope="module")
def eyes_server(files, logs):
    """llama-server started with the projector by hand."""
    model, mmproj = files
    with LlamaServer(
        model, logs / "llama-server-vision.log", parallel=2, extra_args=["--mmproj", str(mmproj)]
    ) as server:
        yield server


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param((), id="server-chat-layer"),
        pytest.param(("--user-name", "\\nUSER: "), id="proxy-template"),
    ],
)
def test_a_server_started_with_a_projector_sees_whatever_renders_the_prompt(
    eyes_server, logs, flags
):
    """Through the server's chat layer, or a prompt the proxy renders (the historic
    template), with the image where the server's marker stands."""
    with ProxyProcess(
        eyes_server.url, logs / f"proxy-vision-external-{len(flags)}.log", args=list(flags)
    ) as proxy:
        seen, unseen = openai_chat(proxy, True), openai_chat(proxy, False)
        assert seen.choices[0].message.content == IMAGE_ANSWER
        assert unseen.choices[0].message.content == TEXT_ANSWER
        assert seen.usage.prompt_tokens - unseen.usage.prompt_tokens == IMAGE_TOKENS
        with pytest.raises(openai.BadRequestError) as caught:
            proxy.sdk().chat.completions.create(
                model="eyes",
                max_tokens=16,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.com/cat.png"},
                            }
                        ],
                    }
                ],
            )
        assert caught.value.body["param"] == "messages[0].content[0].image_url.url"
        assert "fetches no images" in caught.value.body["message"]


def test_one_command_serves_a_model_with_its_projector(files, logs):
    """``oai-proxy --model … --server-args "-mm …"``: the server it starts sees."""
    model, mmproj = files
    binary = find_server("llamacpp")
    with ProxyProcess(
        NO_UPSTREAM,
        logs / "proxy-vision-one-command.log",
        env=binary.env,
        args=[
            "--model",
            str(model),
            "--llama-server",
            str(binary.path),
            "--server-args",
            f"-np 1 -c 2048 -mm {mmproj}",
            "--log-dir",
            str(logs / "servers-vision-one-command"),
        ],
    ) as proxy:
        assert openai_chat(proxy, True).choices[0].message.content == IMAGE_ANSWER
        assert "vision" in proxy.ollama().show("eyes").capabilities


@pytest.mark.parametrize("kind", OLD)
def test_an_old_server_names_the_field_and_the_model(model, logs, kind):
    with (
        LlamaServer(model, logs / f"vision-{kind}.log", kind=kind, parallel=1) as server,
        ProxyProcess(server.url, logs / f"proxy-vision-{kind}.log") as proxy,
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            openai_chat(proxy, True, model="old")
        assert caught.value.body["param"] == "messages[0].content[1].image_url.url"
        assert "'old' cannot see images" in caught.value.body["message"]
        assert openai_chat(proxy, False, model="old").choices[0].message.content
