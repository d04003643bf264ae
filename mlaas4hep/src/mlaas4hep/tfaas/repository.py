"""The model repository on disk: what survives a restart.

Layout: `<root>/<name>` is a symbolic link to `<root>/.store/<name>-<id>/`, the bundle folder
(params.json, the model file, labels, columns, specs, and `.owner.json`). Replacing a model
swaps the link in one rename, so a request never finds a half-written model, and the link's
target is the model's version: a process notices an upload made by another one by reading it.

Models are private to the service: folders are created 0700 and files 0600, whatever the
archive or the process umask said. Who may replace or delete a model is decided under the same
lock that swaps its link, so two uploads of one new name cannot both win.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from mlaas4hep.server.bundles import BundleError, check_name
from mlaas4hep.tfaas.errors import BadRequest, ModelNotFound, clip
from mlaas4hep.tfaas.params import ModelParams, read_params

OWNER_FILE = ".owner.json"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
OwnerCheck = Callable[[str | None], None]  # raises when the current owner forbids the change


def valid_name(name: str) -> str:
    """Model names are single path components: no '/', no '..', no leading dot."""
    try:
        return check_name(name, "model name")
    except BundleError:
        raise BadRequest(
            f"invalid model name {clip(name)}: use letters, digits, '_', '-', '.' "
            "(at most 64, not starting with '.')"
        ) from None


def make_private(folder: Path) -> None:
    """Folders 0700 and files 0600 under `folder` (and itself); links are left as they are."""
    for parent, _, files in os.walk(folder):  # links to folders are listed, never entered
        base = Path(parent)
        base.chmod(FOLDER_MODE)
        for name in files:
            if not (base / name).is_symlink():
                (base / name).chmod(FILE_MODE)


class ModelRepository:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / ".store"
        root.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        for folder in (self.store, root / ".staging"):
            folder.mkdir(mode=FOLDER_MODE, exist_ok=True)
            folder.chmod(FOLDER_MODE)  # also when an older version created it with the umask
        with contextlib.suppress(PermissionError):  # e.g. a root-owned /var/lib/... folder
            root.chmod(FOLDER_MODE)

    def clear_staging(self) -> None:
        """Left-overs of uploads cut short by a crash (call before any worker starts)."""
        for entry in (self.root / ".staging").iterdir():
            shutil.rmtree(entry, ignore_errors=True)

    def names(self) -> list[str]:
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_symlink() and not entry.name.startswith(".")
        )

    def version(self, name: str) -> str | None:
        """The stored version of `name` (changes on every upload), None if there is none."""
        valid_name(name)  # never follow a link outside the repository
        try:
            return os.readlink(self.root / name)  # noqa: PTH115 - a str, on every request
        except OSError:
            return None

    def folder(self, name: str) -> Path:
        valid_name(name)
        link = self.root / name
        if not link.is_symlink() or not link.is_dir():
            raise ModelNotFound(name, self.names())
        return link

    def params(self, name: str) -> ModelParams:
        return read_params(self.folder(name))

    def owner(self, name: str) -> str | None:
        try:
            return json.loads((self.folder(name) / OWNER_FILE).read_text()).get("owner")
        except (OSError, ValueError, ModelNotFound):
            return None

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private scratch folder for an upload, removed afterwards whatever happens."""
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.root / ".staging"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Uploads and deletes from every server process, one at a time."""
        descriptor = os.open(self.root / ".lock", os.O_WRONLY | os.O_CREAT, FILE_MODE)
        with os.fdopen(descriptor, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def install(
        self, bundle: Path, name: str, owner: str | None, may_replace: OwnerCheck | None = None
    ) -> str:
        """Move a checked bundle folder in as `name`, replacing any previous version.

        `may_replace` is called with the current owner (None for a new name) under the lock, so
        no other upload or delete of `name` comes between the check and the swap.
        """
        valid_name(name)
        version = f"{name}-{uuid.uuid4().hex[:12]}"
        target = self.store / version
        record = bundle / OWNER_FILE  # ours, whatever the archive held under that name
        if record.is_dir() and not record.is_symlink():
            shutil.rmtree(record)
        record.unlink(missing_ok=True)
        record.write_text(json.dumps({"owner": owner, "uploaded": time.time()}))
        make_private(bundle)
        bundle.rename(target)
        try:
            with self._locked():
                if may_replace is not None:
                    may_replace(self.owner(name))
                link = self.root / f".link-{version}"
                link.symlink_to(Path(".store") / version)
                previous = self.version(name)
                link.replace(self.root / name)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        if previous:
            shutil.rmtree(self.root / previous, ignore_errors=True)
        return str(Path(".store") / version)

    def delete(self, name: str, may_delete: OwnerCheck | None = None) -> None:
        """Remove `name`; `may_delete` sees its owner under the same lock as the removal."""
        valid_name(name)
        with self._locked():
            previous = self.version(name)
            if previous is None:
                raise ModelNotFound(name, self.names())
            if may_delete is not None:
                may_delete(self.owner(name))
            (self.root / name).unlink()
        shutil.rmtree(self.root / previous, ignore_errors=True)
