"""The list of pulled models, kept in a file every process of the proxy reads."""

from proxy.config.hubref import HubReference
from proxy.servers.hub import PulledModels

SMOL, GEMMA = HubReference("org/smol", "Q4_K_M"), HubReference("org/gemma")


def test_pulls_are_kept_in_order_once_each_and_outlive_the_object(tmp_path):
    pulled = PulledModels(tmp_path / "cache" / "pulled.json")
    assert pulled.references() == ()
    for reference in (SMOL, GEMMA, SMOL):
        pulled.add(reference)
    assert PulledModels(tmp_path / "cache" / "pulled.json").references() == (SMOL, GEMMA)
    pulled.remove(SMOL)
    pulled.remove(HubReference("org/never"))
    assert pulled.references() == (GEMMA,)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["pulled.json", "pulled.lock"]


def test_a_file_that_does_not_read_names_none_and_an_entry_that_does_not_parse_is_passed(tmp_path):
    path = tmp_path / "pulled.json"
    for text in ("{", "[]", '{"pulled": 3}'):
        path.write_text(text)
        assert PulledModels(path).references() == ()
    path.write_text('{"pulled": ["hf:org/smol:Q4_K_M", "hf:nope", 7, "smol.gguf", "hf:org/gemma"]}')
    assert PulledModels(path).references() == (SMOL, GEMMA)
