"""The files of one server run: /embed's embeddings, /track's uploads and the flags that cancel
the work of a request whose client left.

The request guard runs in LitServe's HTTP processes and the models in its worker processes: they
share no memory, and LitServe never tells a worker that a client is gone (it goes on computing a
stream nobody reads, and never closes the generator). So the guard gives each cancellable request
a token (a form or JSON field, CANCEL_FIELD, that it sets itself), and when the client leaves
before its answer is complete it writes an empty file named by the token; the worker looks for
that file before each frame or point batch and stops. Everything is below one temporary folder
that the server removes when it stops, whatever its workers were doing.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from lang_sam.errors import LangSAMError

CANCEL_FIELD = "lang_sam_request"  # set by the request guard; a client's own value is overwritten
TOKEN = re.compile(r"[0-9a-f]{32}")
UPLOAD_PREFIX = "lang-sam-track-"


class RequestCancelled(LangSAMError):
    """The client of a request left before its answer was ready; its work stopped."""


@dataclass(frozen=True)
class ServerFiles:
    """The folder of one server run (picklable: the workers and HTTP processes get the path)."""

    root: str

    @classmethod
    def create(cls) -> ServerFiles:
        """A new lang-sam-server-* folder in the temporary folder ($TMPDIR)."""
        files = cls(tempfile.mkdtemp(prefix="lang-sam-server-"))
        for name in ("uploads", "cancelled", "embeddings"):
            (Path(files.root) / name).mkdir()
        return files

    def embeddings_folder(self) -> str:
        """Where /embed's embeddings are kept for /decode (every worker reads it)."""
        return str(Path(self.root) / "embeddings")

    def upload_folder(self) -> Path:
        """A new folder for one /track upload; its request removes it, and the server at its end."""
        return Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=Path(self.root) / "uploads"))

    @staticmethod
    def new_token() -> str:
        return uuid.uuid4().hex

    def cancel(self, token: str) -> None:
        """Mark token's request cancelled: its client left."""
        self._flag(token).touch()

    def cancelled(self, token: str | None) -> bool:
        """Whether token's client left (a request without a token cannot be cancelled)."""
        return token is not None and self._flag(token).exists()

    def forget(self, token: str | None) -> None:
        """Remove token's flag once its request is over, so that the folder does not grow."""
        if token is not None:
            self._flag(token).unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _flag(self, token: str) -> Path:
        if not TOKEN.fullmatch(token):  # only the guard sets tokens; anything else is not a file name to use
            raise ValueError(f"Not a request token: {token!r}.")
        return Path(self.root) / "cancelled" / token


def request_token(payload) -> str | None:
    """The token the guard gave a request (a JSON object or a form), or None if it has none."""
    token = payload.get(CANCEL_FIELD) if hasattr(payload, "get") else None
    return token if isinstance(token, str) and TOKEN.fullmatch(token) else None
