"""Auth without a server: the Authorization header's parsing and the static token check."""

from __future__ import annotations

import pytest

from gateway_dask_zarr.auth import Authenticator, bearer_token
from gateway_dask_zarr.config import Settings
from gateway_dask_zarr.errors import Unauthorized

pytestmark = pytest.mark.fast

TOKEN = "a-token-of-sixteen-or-more"


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("token abc", "abc"),
        ("Token abc", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
        ("abc", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_auth_none_is_anonymous() -> None:
    assert Authenticator(Settings()).user(None) == "anonymous"


def test_static_tokens() -> None:
    auth = Authenticator(Settings(auth="token", api_tokens=(TOKEN,)))
    assert auth.user(f"Bearer {TOKEN}") == "token"
    with pytest.raises(Unauthorized, match="needs a token"):
        auth.user(None)
    with pytest.raises(Unauthorized, match="not valid"):
        auth.user(f"Bearer {TOKEN}x")
