"""The files of a hub repository a model is, picked as llama-server -hf picks them."""

import pytest

from proxy.servers.hubfiles import Choice, bits, choose, is_model, part

REPO = [
    "README.md",
    "smol-F16.gguf",
    "smol-Q8_0.gguf",
    "smol-Q4_K_M.gguf",
    "smol-IQ4_XS.gguf",
    "mmproj-smol-F16.gguf",
    "mmproj-smol-Q8_0.gguf",
    "smol.imatrix.gguf",
]
SPLIT = [
    "big/big-Q4_K_M-00002-of-00003.gguf",
    "big/big-Q4_K_M-00001-of-00003.gguf",
    "big/big-Q4_K_M-00003-of-00003.gguf",
    "big/big-Q8_0-00001-of-00002.gguf",
    "big/big-Q8_0-00002-of-00002.gguf",
    "mmproj-F16.gguf",
    "big/mmproj-big-F32.gguf",
    "other/mmproj-Q4_0.gguf",
]


@pytest.mark.parametrize(
    "files, tag, expected",
    [
        (REPO, "", Choice(("smol-Q4_K_M.gguf",), "mmproj-smol-Q8_0.gguf")),
        (REPO, "Q8_0", Choice(("smol-Q8_0.gguf",), "mmproj-smol-Q8_0.gguf")),
        (REPO, "q8_0", Choice(("smol-Q8_0.gguf",), "mmproj-smol-Q8_0.gguf")),
        (REPO, "iq4_xs", Choice(("smol-IQ4_XS.gguf",), "mmproj-smol-Q8_0.gguf")),
        (REPO, "F16", Choice(("smol-F16.gguf",), "mmproj-smol-F16.gguf")),
        (["a-Q8_0.gguf", "a-F16.gguf"], "", Choice(("a-Q8_0.gguf",))),
        (["a-F16.gguf", "b-BF16.gguf"], "", Choice(("a-F16.gguf",))),
        (
            SPLIT,
            "",
            Choice(
                (
                    "big/big-Q4_K_M-00001-of-00003.gguf",
                    "big/big-Q4_K_M-00002-of-00003.gguf",
                    "big/big-Q4_K_M-00003-of-00003.gguf",
                ),
                "big/mmproj-big-F32.gguf",
            ),
        ),
        (
            SPLIT,
            "Q8_0",
            Choice(
                ("big/big-Q8_0-00001-of-00002.gguf", "big/big-Q8_0-00002-of-00002.gguf"),
                "big/mmproj-big-F32.gguf",
            ),
        ),
        (
            ["x/m-Q4_K_M.gguf", "mmproj-Q8_0.gguf", "y/mmproj-F16.gguf"],
            "",
            Choice(("x/m-Q4_K_M.gguf",), "mmproj-Q8_0.gguf"),
        ),
    ],
)
def test_the_tag_picks_the_model_its_parts_and_its_projector(files, tag, expected):
    assert choose(files, tag) == expected


@pytest.mark.parametrize(
    "files, tag",
    [(REPO, "Q2_K"), (["README.md", "mmproj-F16.gguf"], ""), ([], ""), (["x.imatrix.gguf"], "")],
)
def test_no_fitting_file_names_what_is_there(files, tag):
    with pytest.raises(ValueError, match="no GGUF file fits") as failed:
        choose(files, tag)
    for name in files:
        assert name in str(failed.value) or not name.endswith(".gguf")


def test_what_a_name_says():
    assert part("a/b-Q4_K_M-00002-of-00005.gguf").__dict__ == {
        "stem": "a/b-Q4_K_M",
        "tag": "Q4_K_M",
        "index": 2,
        "count": 5,
    }
    assert part("model.Q8_0.gguf").tag == "Q8_0" and part("README.md") is None
    assert [bits(t) for t in ("Q4_K_M", "F16", "BF16", "IQ4_XS", "")] == [4, 16, 16, 4, 0]
    assert is_model("m-Q4_0.gguf") and not is_model("dir/mmproj-F16.gguf")
    assert not is_model("m.imatrix.gguf") and not is_model("mtp-m.gguf") and not is_model("x.bin")
