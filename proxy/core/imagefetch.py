"""Images clients give by http(s) URL, fetched on their behalf only as the operator allows
(``--image-urls``): ``public`` reaches addresses on the internet only
(:mod:`proxy.core.addresses` says which), and connects to the very address it checked;
``any`` reaches the proxy's machine and its LAN too. No redirect is followed (it could lead
anywhere). Each GET is :func:`proxy.core.fetching.fetch`'s.

A request's images are fetched at once, a thread each, and all of them together have one
deadline, from the first connect to the last byte, and the bytes one image may have: servers
that drip their bytes, or many URLs, hold a request no longer than one slow image would, and
take no more memory than one large one. At the deadline, or at the first image that fails,
every connection still open is shut, which ends its thread.
"""

from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import replace

from proxy.core import images
from proxy.core.errors import InvalidRequestError
from proxy.core.fetching import Deadline, NotPublic, TimedOut, TooLarge, Unfetched, fetch
from proxy.core.outbound import Resolve, resolve
from proxy.core.types import GenerationRequest, Image

FETCH_TIMEOUT = 10.0  # seconds for a request's images, from the first connect to the last byte
MOST_AT_ONCE = 8  # fetches of one request running at once, a thread each
HEADERS = {"User-Agent": "oai-proxy", "Accept": "image/*"}


class ImageFetcher:
    """Fetches the URL images of a request, within ``policy`` and ``bounds`` (the bytes of
    one image are those of a request's URL images together)."""

    def __init__(
        self,
        policy: str,
        bounds: images.Bounds,
        *,
        timeout: float = FETCH_TIMEOUT,
        resolve: Resolve = resolve,
    ) -> None:
        self.policy = policy
        self.bounds = bounds
        self.timeout = timeout
        self.resolve = resolve

    def fetch(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with each image given by URL fetched and checked."""
        wanted = [image for image in request.images if image.url]
        if not wanted:
            return request
        got = {image.field: image for image in self._all(wanted)}
        return replace(
            request,
            messages=tuple(
                replace(
                    message, images=tuple(got.get(image.field, image) for image in message.images)
                )
                if any(image.url for image in message.images)
                else message
                for message in request.messages
            ),
        )

    def _all(self, wanted: list) -> list:
        """``wanted`` fetched at once, within one deadline and one budget of bytes."""
        pool = ThreadPoolExecutor(min(len(wanted), MOST_AT_ONCE), "image-fetch")
        with Deadline(self.timeout, self.bounds.size) as deadline:
            futures = [pool.submit(self._one, image, deadline) for image in wanted]
            try:
                done, _ = wait(futures, deadline.left(), FIRST_EXCEPTION)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        for future in futures:  # the first failure, in the request's order
            failure = future.exception() if future in done else None
            if failure is not None and not isinstance(failure, TimedOut):
                raise failure
        for image, future in zip(wanted, futures, strict=True):  # else the first the deadline ended
            if future not in done or isinstance(future.exception(), TimedOut):
                raise _fail(
                    image, f"could not be fetched: its server took more than {self.timeout:g} s"
                )
        return [future.result() for future in futures]

    def _one(self, image: Image, deadline: Deadline) -> Image:
        """``image`` fetched and read; one the deadline ended is left a :class:`TimedOut`,
        which :meth:`_all` names as it names one still running."""
        try:
            got = fetch(
                image.url,
                deadline,
                self.bounds.size,
                HEADERS,
                policy=self.policy,
                resolve=self.resolve,
            )
        except NotPublic:
            raise _fail(
                image,
                "is not on the internet (the proxy fetches images from public addresses only)",
            ) from None
        except TooLarge:
            raise _fail(
                image,
                f"could not be fetched: the images this request gives by URL "
                f"are larger together than the {self.bounds.size} bytes one "
                f"image may be",
            ) from None
        except TimedOut:
            raise
        except Unfetched:
            raise _fail(image, "could not be fetched: its server did not answer") from None
        if got.status != 200:
            raise _fail(image, f"could not be fetched: its server answered {got.status}")
        if got.cut:
            raise images.too_large(image.field, self.bounds.size)
        return images.from_bytes(got.body, image.field, self.bounds, image.at)


def _fail(image: Image, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"'{image.field}' {message}", param=image.field)
