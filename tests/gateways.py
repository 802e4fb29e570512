"""A gateway the tests build in-process from a models file and a keys file, as a team's
operator starts one: the admin key ``admin``, usage kept in the test's folder."""

from __future__ import annotations

import contextlib
from typing import Iterator

from flask.testing import FlaskClient

from proxy.app import create_app
from proxy.config.settings import Settings
from tests.runtimes import runtime_in

ADMIN = {"Authorization": "Bearer admin"}


@contextlib.contextmanager
def gateway(tmp_path, models: str, keys: str, **settings) -> Iterator[FlaskClient]:
    """A test client of the app of ``models`` and ``keys`` (the files' texts) and more
    ``settings``; its batch runner and its router are closed after."""
    (tmp_path / "models.toml").write_text(models)
    (tmp_path / "keys.toml").write_text(keys)
    app = create_app(
        Settings.of(
            config=str(tmp_path / "models.toml"),
            keys=str(tmp_path / "keys.toml"),
            admin_key="admin",
            usage_db=str(tmp_path / "usage.sqlite3"),
            **settings,
        ),
        runtime_in(tmp_path),
    )
    try:
        yield app.test_client()
    finally:
        app.extensions["batches"].runner.stop()
        app.extensions["proxy"].router.close()


def usage(client: FlaskClient) -> dict:
    """The admin's usage rows, by ``(key, model)``."""
    rows = client.get("/admin/usage", headers=ADMIN).json["usage"]
    return {(row["key"], row["model"]): row for row in rows}
