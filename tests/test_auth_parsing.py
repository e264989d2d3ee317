"""Auth without a server: the Authorization header's parsing and the static token check, with names."""

from __future__ import annotations

import pytest
from flask import Flask

from gateway_dask_zarr.errors import Unauthorized
from gateway_dask_zarr.server.auth import Authenticator, bearer_token
from gateway_dask_zarr.settings import Settings

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


def _caller(auth: Authenticator, header: str | None) -> tuple[str, bool, bool]:
    with Flask(__name__).test_request_context(headers={"Authorization": header} if header else {}):
        return auth.caller()


def test_auth_none_is_anonymous_and_sees_everything() -> None:
    assert _caller(Authenticator(Settings()), None) == ("anonymous", True, False)


def test_static_tokens_answer_their_names() -> None:
    auth = Authenticator(Settings(auth="token", api_tokens=(TOKEN, f"alice:{TOKEN}-alice")))
    assert _caller(auth, f"Bearer {TOKEN}") == ("token", False, False)
    assert _caller(auth, f"token {TOKEN}-alice") == ("alice", False, False)
    with pytest.raises(Unauthorized, match="needs a token"):
        _caller(auth, None)
    with pytest.raises(Unauthorized, match="not valid"):
        _caller(auth, f"Bearer {TOKEN}x")
    with pytest.raises(Unauthorized, match="not valid"):
        _caller(auth, f"Bearer alice:{TOKEN}-alice")
