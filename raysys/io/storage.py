"""Storage as a URI: every ``--out``, ``--labels``, ``--model`` and ``--data`` is a local
path or a URI that :mod:`pyarrow.fs` reads (``s3://``, ``gs://``, ``hdfs://``; NFS is a
local path mounted on every node), with the semantics of Ray's own ``storage_path``.

* :func:`path` turns a string into a :class:`pathlib.Path` (a local path or ``file://``) or
  a :class:`RemotePath` that has the part of the ``pathlib`` interface raysys uses
  (``/``, ``name``, ``parent``, ``exists``, ``is_dir``, ``iterdir``, ``glob``,
  ``read_bytes``, ``write_text`` ...), so the code that hands files between tasks is the
  same for both. Every hand-off between Ray tasks goes through this storage: a worker's
  local disk is never read by another task.
* Readers that need a local file (image decoders, ``safetensors``) call
  :func:`local_copy`: a remote file or folder is downloaded once per node into a cache
  (``$RAYSYS_CACHE``, default ``~/.cache/raysys/storage``), checked against the remote
  listing (names, sizes, modification times) on every call, and written atomically; a
  local path is returned as it is.
* Writes are atomic on both: a local file by a temporary file and a rename, an object by
  one PUT.

Credentials and endpoints are pyarrow's: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``AWS_ENDPOINT_URL`` (an S3-compatible server), or a URI query such as
``s3://bucket/x?endpoint_override=host:9000&scheme=http``. Ray workers inherit the
driver's environment through the job's runtime environment.

Weak supervision: a read of a remote file raises the ``raysys.storage.open`` audit event,
which :mod:`raysys.guard` checks like a local ``open``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

__all__ = ["RemotePath", "path", "is_uri", "local_copy", "upload", "rmtree", "write_bytes",
           "filesystem", "cache_root", "ray_storage", "AUDIT_EVENT"]

AUDIT_EVENT = "raysys.storage.open"
_FS: dict[str, object] = {}  # one pyarrow filesystem per (scheme, authority, query), per process


def is_uri(x) -> bool:
    """True for ``scheme://...`` other than ``file://`` (what :class:`RemotePath` handles)."""
    if isinstance(x, RemotePath):
        return True
    if not isinstance(x, str) or "://" not in x:
        return False
    return not x.startswith("file://")


def path(x: str | os.PathLike) -> Path | RemotePath:
    """A local :class:`~pathlib.Path` (``file://`` stripped) or a :class:`RemotePath`."""
    if isinstance(x, (Path, RemotePath)):
        return x
    s = os.fspath(x)
    if is_uri(s):
        return RemotePath(s)
    return Path(s[len("file://"):] if s.startswith("file://") else s)


def filesystem(p: RemotePath):
    """The pyarrow filesystem of ``p`` (cached per process) and ``p``'s path within it."""
    import pyarrow.fs as pafs

    key = f"{p.scheme}://{p.authority}?{p.query}"
    if key not in _FS:
        base = f"{p.scheme}://{p.authority}" + (f"?{p.query}" if p.query else "")
        _FS[key] = pafs.FileSystem.from_uri(base)[0]
    return _FS[key], p.key


def ray_storage(p: str | os.PathLike | RemotePath) -> dict:
    """``RunConfig`` keyword arguments (Ray Train and Tune) that put a run's checkpoints
    at ``p``: a local folder (shared by every node, or a single machine), or a storage URI
    with this module's filesystem, so Ray and raysys reach the same endpoint."""
    p = path(p)
    if isinstance(p, RemotePath):
        fs, key = filesystem(p)
        return {"storage_path": key, "storage_filesystem": fs}
    return {"storage_path": str(p)}


class RemotePath:
    """A file or folder in remote storage, with the ``pathlib`` methods raysys uses.

    Folders are prefixes (object stores have no real folders): ``mkdir`` writes nothing
    there, and a folder exists once something is in it.
    """

    def __init__(self, uri: str) -> None:
        u = urlsplit(uri)
        if not u.scheme or not u.netloc:
            raise ValueError(f"not a storage URI: {uri!r} (expected scheme://bucket/path)")
        self.scheme, self.authority, self.query = u.scheme, u.netloc, u.query
        self._parts = tuple(p for p in u.path.split("/") if p and p != ".")
        if ".." in self._parts:
            raise ValueError(f"storage URI {uri!r} has '..' in it: give the full path")

    # ---------------------------------------------------------------- pure path operations
    def _with(self, parts) -> RemotePath:
        new = object.__new__(RemotePath)
        new.scheme, new.authority, new.query = self.scheme, self.authority, self.query
        new._parts = tuple(parts)
        return new

    @property
    def key(self) -> str:
        """The path in the filesystem (``bucket/a/b`` for S3)."""
        return "/".join((self.authority, *self._parts))

    def __str__(self) -> str:
        q = f"?{self.query}" if self.query else ""
        return f"{self.scheme}://{self.key}{q}"

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, other) -> RemotePath:
        extra = [p for p in str(other).split("/") if p and p != "."]
        if ".." in extra:
            raise ValueError(f"'..' in a storage path: {other!r}")
        return self._with((*self._parts, *extra))

    def joinpath(self, *others) -> RemotePath:
        p = self
        for o in others:
            p = p / o
        return p

    @property
    def name(self) -> str:
        return self._parts[-1] if self._parts else ""

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> RemotePath:
        return self._with(self._parts[:-1])

    def with_suffix(self, suffix: str) -> RemotePath:
        return self.parent / PurePosixPath(self.name).with_suffix(suffix).name

    def resolve(self) -> RemotePath:
        return self

    def relative_to(self, other: RemotePath) -> PurePosixPath:
        n = len(other._parts)
        if self._with(self._parts[:n]) != other:
            raise ValueError(f"{self} is not under {other}")
        return PurePosixPath(*self._parts[n:])

    # ---------------------------------------------------------------- queries
    def _info(self):
        fs, key = filesystem(self)
        return fs.get_file_info(key)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    def listing(self, recursive: bool = False) -> list:
        """pyarrow ``FileInfo`` of what is under this folder (empty when there is none)."""
        import pyarrow.fs as pafs

        fs, key = filesystem(self)
        return fs.get_file_info(pafs.FileSelector(key, allow_not_found=True,
                                                  recursive=recursive))

    def iterdir(self):
        for info in sorted(self.listing(), key=lambda i: i.path):
            yield self / info.base_name

    def glob(self, pattern: str):
        """Paths under this folder whose relative path matches ``pattern`` part by part
        (``*`` never crosses a ``/``, as in ``pathlib``)."""
        pats = pattern.split("/")
        base = len(self.key.split("/"))
        for info in sorted(self.listing(recursive=len(pats) > 1), key=lambda i: i.path):
            rel = info.path.split("/")[base:]
            if len(rel) == len(pats) and all(fnmatch.fnmatchcase(r, p)
                                             for r, p in zip(rel, pats, strict=True)):
                yield self.joinpath(*rel)

    def stat_size(self) -> int:
        return int(self._info().size or 0)

    # ---------------------------------------------------------------- reading and writing
    def read_bytes(self) -> bytes:
        sys.audit(AUDIT_EVENT, str(self))
        fs, key = filesystem(self)
        try:
            with fs.open_input_stream(key) as f:
                return f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file in storage: {self}") from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        fs, key = filesystem(self)
        with fs.open_output_stream(key) as f:  # one PUT: atomic on object stores
            f.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        fs, key = filesystem(self)
        fs.create_dir(key, recursive=True)

    def unlink(self, missing_ok: bool = False) -> None:
        fs, key = filesystem(self)
        try:
            fs.delete_file(key)
        except FileNotFoundError:
            if not missing_ok:
                raise


def write_bytes(p: str | os.PathLike | RemotePath, data: bytes) -> None:
    """Write ``data`` to ``p`` atomically (a temporary file and a rename locally; one PUT
    on an object store)."""
    from raysys.io.crtrack import new_file_mode

    p = path(p)
    if isinstance(p, RemotePath):
        p.write_bytes(data)
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rmtree(p: str | os.PathLike | RemotePath) -> None:
    """Remove a folder and everything in it (nothing when it is not there)."""
    import shutil

    p = path(p)
    if isinstance(p, RemotePath):
        fs, key = filesystem(p)
        if p.exists():
            fs.delete_dir(key)
    elif p.is_dir():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)


def upload(local: str | os.PathLike, dest: str | os.PathLike | RemotePath) -> None:
    """Copy a local file or folder to ``dest`` (a folder's files one by one, each atomic)."""
    local, dest = Path(local), path(dest)
    if local.is_dir():
        for f in sorted(local.rglob("*")):
            if f.is_file():
                write_bytes(dest.joinpath(*f.relative_to(local).parts), f.read_bytes())
    else:
        write_bytes(dest, local.read_bytes())


def cache_root() -> Path:
    """Where remote inputs are cached on this node (``$RAYSYS_CACHE``)."""
    env = os.environ.get("RAYSYS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "raysys" / "storage"


def _cache_dir(p: RemotePath) -> Path:
    """``<cache>/<scheme>/<authority>/<hash of the URI>``: the copy keeps ``p``'s name."""
    return cache_root() / p.scheme / p.authority / hashlib.sha256(str(p).encode()).hexdigest()[:16]


def local_copy(p: str | os.PathLike | RemotePath) -> Path:
    """A local path with ``p``'s content: ``p`` itself when it is local, else a copy in this
    node's cache, refreshed whenever the remote listing (names, sizes, modification times)
    differs from the copy's. Safe for concurrent callers on one node (a file lock)."""
    import fcntl

    p = path(p)
    if not isinstance(p, RemotePath):
        return p
    info = p._info()
    import pyarrow.fs as pafs

    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"not found in storage: {p}")
    single = info.type == pafs.FileType.File
    entries = [info] if single else [i for i in p.listing(recursive=True)
                                     if i.type == pafs.FileType.File]
    base = len(p.key.split("/")) - (1 if single else 0)
    want = {"/".join(i.path.split("/")[base:]): [i.size, str(i.mtime)] for i in entries}
    dest = _cache_dir(p) if single else _cache_dir(p) / (p.name or "_")
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / ".raysys-listing.json"
    with open(dest / ".raysys-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        have = json.loads(marker.read_text()) if marker.is_file() else {}
        if have != want:
            marker.unlink(missing_ok=True)
            for rel, meta in sorted(want.items()):
                if have.get(rel) != meta or not (dest / rel).is_file():
                    src = p if single else p.joinpath(*rel.split("/"))
                    write_bytes(dest / rel, src.read_bytes())
            for rel in set(have) - set(want):
                (dest / rel).unlink(missing_ok=True)
            marker.write_text(json.dumps(want))
    return dest / p.name if single else dest
