"""Models from a hub: downloaded by name, and the ones clients pulled kept so that they are served
again.

Models downloaded by name from a hub, with the ``huggingface_hub`` library: into its standard cache
(``HF_HOME``), from the hub it is pointed at (``HF_ENDPOINT``), with the token it is given
(``HF_TOKEN``); a dropped connection resumed where it stopped; a file downloaded checked against
the hub's SHA-256 before it is used; the cache used alone when the hub cannot be reached (or
``HF_HUB_OFFLINE`` says not to try).

The library does the hub's protocol, its cache layout, locks and resumption; this module picks
the files (:mod:`proxy.servers.hubfiles`), checks them and reports progress.

The models clients pulled (Ollama's ``/api/pull``), kept in a file of the proxy's cache so that
they are served again after a restart, and by every process of the proxy. The models' files are
in the hub's cache; this file only names them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from proxy import __version__
from proxy.config.hubref import HubFileReference, HubReference
from proxy.servers import hubfiles

logger = logging.getLogger(__name__)

Progress = Callable[[str, str, int, int], None]  # (file, its SHA-256, bytes so far, in all)
HASH_BLOCK = 1 << 20
LIST_TIMEOUT = 10.0  # seconds for the hub to list a repository's files


class HubError(ValueError):
    """A model on the hub that cannot be had: not there, not allowed, not reachable and not
    in the cache, or not what the hub says it is."""


@dataclass(frozen=True)
class HubFile:
    """A file of a repository as the hub lists it: its path, size and SHA-256 (empty for a
    file kept in git rather than LFS, which the hub gives no SHA-256 of)."""

    path: str
    size: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class DownloadedModel:
    """A model downloaded to this machine: its first part (what llama-server is given), its
    projector (empty: none), and every file it took."""

    model: str
    projector: str
    files: tuple


def download(
    reference: HubReference, *, progress: Optional[Progress] = None, offline: bool = False
) -> DownloadedModel:
    """The files of ``reference``, downloaded unless the cache has them already.
    ``progress`` hears each file's bytes as they come (none: a bar on the terminal);
    ``offline``: the cache alone."""
    _library(reference.name)
    listed = _listed(reference.repo, offline)
    try:
        choice = hubfiles.choose([item.path for item in listed], reference.tag)
    except ValueError as exc:
        raise HubError(f"{reference.name}: {exc}") from None
    by_path = {item.path: item for item in listed}
    wanted = choice.parts + ((choice.projector,) if choice.projector else ())
    local = tuple(
        _download_file(reference.repo, by_path[path], progress, offline) for path in wanted
    )
    return DownloadedModel(local[0], local[-1] if choice.projector else "", local)


def cached(reference: HubReference) -> Optional[DownloadedModel]:
    """``reference``'s files if the cache has them all (no network); ``None`` if not."""
    try:
        return download(reference, offline=True)
    except HubError:
        return None


def remove(files: DownloadedModel) -> None:
    """Delete a model's files from the cache: each file's link, and the data it links to."""
    for path in files.files:
        link = Path(path)
        target = link.resolve()
        for each in (link, target):
            try:
                each.unlink()
            except FileNotFoundError:
                pass


def _listed(repo: str, offline: bool) -> list:
    """The repository's files, from the hub in one request (the library's file listing
    retries for half a minute where the hub is unreachable); from the cache when the hub
    cannot be reached."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if offline or constants.is_offline_mode():
        return _cached_files(repo, "the hub is not asked (offline)", logging.DEBUG)
    api = HfApi(library_name="oai-proxy", library_version=__version__)
    try:
        info = api.model_info(repo, files_metadata=True, timeout=LIST_TIMEOUT)
    except GatedRepoError:
        raise HubError(
            f"hf:{repo} is gated: accept its terms on the hub and give a token (HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise HubError(
            f"hf:{repo} is not on the hub (or is private: give a token with HF_TOKEN)"
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status is not None and status < 500 and status != 429:
            raise HubError(f"the hub refused to list hf:{repo} (HTTP {status})") from None
        return _cached_files(repo, f"the hub answered HTTP {status}")
    except _unreachable():
        return _cached_files(repo, "the hub cannot be reached")
    return [
        HubFile(item.rfilename, item.size or 0, item.lfs.sha256 if item.lfs else "")
        for item in info.siblings or ()
    ]


def _library(name: str) -> None:
    """A ``HubError`` where the library that downloads ``name`` is not installed."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        raise HubError(
            f"{name}: files named on a hub are downloaded with huggingface_hub, which needs "
            f"Python 3.10 or newer (pip install huggingface_hub)"
        ) from None


def _unreachable() -> tuple:
    """The errors of a hub that cannot be reached: the network's (refused, unreachable,
    timed out), as the library's HTTP client raises them."""
    from huggingface_hub import errors

    return (OSError, errors.HTTPError)


def _cached_files(repo: str, why: str, level: int = logging.INFO) -> list:
    """The files of ``repo`` the cache holds for its main branch (``why`` is logged at
    ``level``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise HubError(f"{why}, and hf:{repo} is not in the cache") from None
    logger.log(level, "%s: using hf:%s from the cache", why, repo)
    return [
        HubFile(path.relative_to(folder).as_posix())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]


def download_file(
    reference: HubFileReference, *, progress: Optional[Progress] = None, offline: bool = False
) -> str:
    """The one file ``reference`` names (a server's flag's: a VAE, a text encoder, a LoRA),
    downloaded unless the cache has it, checked as a model's files are; its path."""
    _library(reference.name)
    listed = _listed(reference.repo, offline)
    item = next((each for each in listed if each.path == reference.path), None)
    if item is None:
        shown = ", ".join(each.path for each in listed[:20]) or "none"
        raise HubError(f"{reference.name}: hf:{reference.repo} has no such file; its files: "
                       f"{shown}")  # fmt: skip
    return _download_file(reference.repo, item, progress, offline)


def _download_file(repo: str, item: HubFile, progress: Optional[Progress], offline: bool) -> str:
    """One file into the cache (already there: nothing to do), checked when it is new."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    fresh = bool(item.sha256) and not _blob(repo, item.sha256).exists()
    try:
        path = hf_hub_download(
            repo,
            item.path,
            local_files_only=offline,
            library_name="oai-proxy",
            library_version=__version__,
            tqdm_class=_reporter(item, progress) if progress else None,
        )
    except LocalEntryNotFoundError:
        raise HubError(f"{item.path} of hf:{repo} is not in the cache") from None
    except (HfHubHTTPError, *_unreachable()) as exc:
        raise HubError(f"downloading {item.path} of hf:{repo} failed: {exc}") from None
    if fresh:
        _verify(path, item, repo)
    return path


def _blob(repo: str, sha256: str) -> Path:
    """Where the cache keeps the data of an LFS file (named by its SHA-256)."""
    from huggingface_hub import constants

    folder = "models--" + repo.replace("/", "--")
    return Path(constants.HF_HUB_CACHE) / folder / "blobs" / sha256


def _verify(path: str, item: HubFile, repo: str) -> None:
    """Refuse (and delete) a file whose SHA-256 is not the one the hub lists."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    if digest.hexdigest() != item.sha256:
        remove(DownloadedModel(path, "", (path,)))
        raise HubError(
            f"{item.path} of hf:{repo} is not what the hub says it is (its "
            f"SHA-256 is {digest.hexdigest()}, the hub's {item.sha256}); it was deleted"
        )


def _reporter(item: HubFile, progress: Progress):
    """A ``tqdm`` class for the library that hands each file's progress to ``progress``
    instead of drawing a bar."""
    from huggingface_hub.utils import tqdm

    class Reporter(tqdm):
        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = kwargs.get("initial", 0) or 0
            self.whole = kwargs.get("total") or 0

        def update(self, n: int = 1):
            self.done += n or 0
            progress(item.path, item.sha256, self.done, self.whole)

    return Reporter


class PulledModels:
    """The references of the models pulled so far, in the order they were pulled."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def references(self) -> tuple:
        """Every model pulled and not deleted; an entry that no longer parses is passed over."""
        try:
            names = json.loads(self.path.read_text(encoding="utf-8")).get("pulled", [])
        except (OSError, ValueError, AttributeError):
            return ()
        found = []
        for name in names if isinstance(names, list) else []:
            try:
                reference = HubReference.parse(name) if isinstance(name, str) else None
            except ValueError:
                reference = None
            if reference is not None and reference not in found:
                found.append(reference)
        return tuple(found)

    def add(self, reference: HubReference) -> None:
        with self._changing():
            kept = self.references()
            if reference not in kept:
                self._write(kept + (reference,))

    def remove(self, reference: HubReference) -> None:
        with self._changing():
            self._write(tuple(r for r in self.references() if r != reference))

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """One change at a time, across the proxy's processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, references: tuple) -> None:
        """Replace the file whole: a reader never sees half of it."""
        text = json.dumps({"pulled": [r.name for r in references]}, indent=1)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(text + "\n", encoding="utf-8")
        os.replace(temporary, self.path)
