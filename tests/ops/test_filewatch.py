"""A changed file is seen once, and a file that goes or comes back is a change too."""

from __future__ import annotations

import os

from proxy.ops.filewatch import FileWatch


def test_each_change_is_seen_once(tmp_path):
    keys, models = tmp_path / "keys.toml", tmp_path / "models.toml"
    keys.write_text("a")
    watch = FileWatch([str(keys), str(models)], changed=lambda: None)
    assert not watch.look()
    keys.write_text("bb")
    assert watch.look() and not watch.look()
    os.utime(keys, ns=(1, 1))
    assert watch.look()
    models.write_text("new")  # a file that was not there
    assert watch.look()
    keys.unlink()
    assert watch.look() and not watch.look()
