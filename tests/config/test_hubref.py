"""Models named by their place on a hub, as the proxy's and Ollama's users write them; and one
file of a repository, as a server's flag names it."""

import pytest

from proxy.config.hubref import HubFileReference, HubReference, is_hub_reference


@pytest.mark.parametrize(
    "text, repo, tag",
    [
        ("hf:bartowski/SmolLM2-135M-Instruct-GGUF", "bartowski/SmolLM2-135M-Instruct-GGUF", ""),
        ("hf:org/repo:Q4_K_M", "org/repo", "Q4_K_M"),
        ("hf.co/org/repo:q8_0", "org/repo", "q8_0"),
        ("hf.co/org/repo:latest", "org/repo", ""),
        ("huggingface.co/org/repo", "org/repo", ""),
        ("HF.CO/Org/Repo.v2:IQ4_XS", "Org/Repo.v2", "IQ4_XS"),
    ],
)
def test_a_reference_names_a_repository_and_a_quant(text, repo, tag):
    reference = HubReference.parse(text)
    assert (reference.repo, reference.tag) == (repo, tag)
    assert HubReference.parse(reference.name) == reference
    assert HubReference.parse(reference.ollama_name) == reference
    assert "/" not in reference.model_id


@pytest.mark.parametrize("text", ["smol.gguf", "/models/x.gguf", "qwen3:8b", "", "hfx:o/r"])
def test_what_is_no_reference_is_none(text):
    assert HubReference.parse(text) is None and not is_hub_reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "hf:",
        "hf:org",
        "hf:org/repo/more",
        "hf:org/../x",
        "hf:org/repo:",
        "hf:org/repo:a b",
        "hf:-org/repo",
        "hf.co/org/re po",
    ],
)
def test_a_malformed_reference_says_the_form(text):
    with pytest.raises(ValueError, match="hf:<org>/<repo>"):
        HubReference.parse(text)


def test_names_and_ids():
    reference = HubReference("org/repo", "Q4_K_M")
    assert reference.name == "hf:org/repo:Q4_K_M"
    assert reference.ollama_name == "hf.co/org/repo:Q4_K_M"
    assert reference.model_id == "org--repo-Q4_K_M"
    assert HubReference("org/repo").ollama_name == "hf.co/org/repo:latest"


@pytest.mark.parametrize(
    "text, repo, path",
    [
        ("hf:second-state/FLUX.1-schnell-GGUF/ae.safetensors", "second-state/FLUX.1-schnell-GGUF",
         "ae.safetensors"),
        ("hf.co/org/repo/vae/diffusion_pytorch_model.safetensors", "org/repo",
         "vae/diffusion_pytorch_model.safetensors"),
    ],
)  # fmt: skip
def test_a_file_reference_names_a_repository_and_a_path_in_it(text, repo, path):
    reference = HubFileReference.parse(text)
    assert (reference.repo, reference.path) == (repo, path)
    assert HubFileReference.parse(reference.name) == reference


@pytest.mark.parametrize(
    "text",
    ["hf:org/repo", "hf:org/repo:Q4_K_M", "hf:org/repo/", "hf:org/repo/../secret",
     "hf:org/repo/a//b", "hf:org/repo/a b", "hf:org/../x/y", "hf:org/repo/" + "a" * 600],
)  # fmt: skip
def test_what_is_not_one_file_on_a_hub_says_the_form(text):
    with pytest.raises(ValueError, match="hf:<org>/<repo>/<path of the file>"):
        HubFileReference.parse(text)


@pytest.mark.parametrize("text", ["-m", "ae.safetensors", "./vae.gguf", "512"])
def test_an_argument_that_is_no_hub_reference_is_none(text):
    assert HubFileReference.parse(text) is None
