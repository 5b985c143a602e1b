"""Atomic file output: every file is written under a temporary name beside its final one
and renamed into place, so a crash, a full disk or Ctrl-C never leaves a half-written file
under a final name (and a resumed export can trust every file it finds).

Temporary names are hidden and carry the writer's pid: `.NAME.tmp-PID-RANDOM`. Leftovers
of dead processes are removed by `clean_stale_temps` when an export (re)starts.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from vidmatte.models.errors import OutputError

TMP_MARK = ".tmp-"
_TMP_RE = re.compile(r"^\..+\.tmp-(\d+)-[0-9a-f]+$")
RESERVE_BYTES = 32 * 1024 * 1024  # keep this much free beyond any estimate


def temp_path(path: str | Path) -> Path:
    """A hidden, unique temporary name beside `path` (same folder, so rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_name(name: str) -> bool:
    return _TMP_RE.match(name) is not None


def output_error(exc: BaseException, path: str | Path, action: str = "writing") -> OutputError:
    """Turn an OSError (or FFmpeg's errno-carrying errors) into a one-line OutputError."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        msg = f"disk full while {action} {path}"
    elif code in (errno.EACCES, errno.EPERM):
        msg = f"permission denied while {action} {path}"
    elif code == errno.EROFS:
        msg = f"read-only file system: cannot write {path}"
    else:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        msg = f"error while {action} {path}: {str(reason).splitlines()[0]}"
    return OutputError(msg)


def _unlink_quiet(path: Path) -> None:
    with suppress(OSError):
        path.unlink()


def commit(tmp: str | Path, path: str | Path) -> None:
    """Rename a finished temporary file into place (atomic, replaces an existing file)."""
    try:
        os.replace(tmp, path)
    except OSError as e:
        _unlink_quiet(Path(tmp))
        raise output_error(e, path, "finalising") from None


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> None:
    """Write `data` to `path` atomically. `fsync=True` also survives power loss (slower;
    used for the manifest, not for every frame)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to `path`, on any
    error it is removed and the final name is left untouched."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
    except OSError as e:
        _unlink_quiet(tmp)
        raise output_error(e, path) from None
    except BaseException:
        _unlink_quiet(tmp)
        raise
    commit(tmp, path)


@contextmanager
def atomic_dir(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path` to fill; on success it takes `path`'s name.

    A folder (a model folder: config.json + tensors) appears whole or not at all. An
    existing `path` is an OutputError unless `replace=True`; then it is swapped out by two
    renames and removed, so a crash leaves the old folder or the new one under the name.
    On any error the temporary folder is removed and `path` is left untouched.
    """
    path = Path(path)
    if path.exists() and not replace:
        raise OutputError(f"{path} exists (pass --overwrite to replace it)")
    make_dirs(path.parent)
    tmp = temp_path(path)
    try:
        tmp.mkdir()
        yield tmp
        if path.exists():
            old = temp_path(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as e:
        raise output_error(e, path) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _existing_ancestor(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    return shutil.disk_usage(_existing_ancestor(Path(path))).free


def check_free_space(path: str | Path, needed_bytes: int) -> None:
    """Raise OutputError if the file system holding `path` (or its nearest existing parent)
    is read-only, or has less than `needed_bytes` plus RESERVE_BYTES free. The message
    states the whole requirement (estimate + reserve), so it never contradicts itself."""
    anchor = _existing_ancestor(Path(path))
    check_writable(anchor, path)
    try:
        free = shutil.disk_usage(anchor).free
    except OSError as e:
        raise output_error(e, path, "checking free space for") from None
    required = int(needed_bytes) + RESERVE_BYTES
    if free < required:
        raise OutputError(
            f"not enough free space for {path}: it needs {_human(required)} free "
            f"(about {_human(needed_bytes)} of output plus a {_human(RESERVE_BYTES)} reserve), "
            f"{_human(free)} free on {anchor}"
        )


def check_writable(anchor: str | Path, path: str | Path | None = None) -> None:
    """OutputError if `anchor` (an existing folder) is on a read-only mount; reported as
    such, not as a space problem (read-only media often report 0 bytes free)."""
    try:
        st = os.statvfs(anchor)
    except OSError as e:
        raise output_error(e, path or anchor, "checking") from None
    if st.f_flag & os.ST_RDONLY:
        raise OutputError(f"read-only file system: cannot write {path or anchor}")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" or abs(n) >= 10 else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale_temps(folder: str | Path) -> int:
    """Remove temporary files left in `folder` by processes that no longer run."""
    folder = Path(folder)
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        m = _TMP_RE.match(entry.name)
        if m and entry.is_file() and not _pid_alive(int(m.group(1))):
            _unlink_quiet(entry)
            removed += 1
    return removed


def make_dirs(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(e, path, "creating") from None
    return path


LOCK_NAME = ".vidmatte.lock"


class FolderLock:
    """One writer per output folder: an exclusive `flock` on `FOLDER/.vidmatte.lock`, which
    names its holder ("pid N on HOST"). A second writer (another --overwrite, or a --resume
    while a run is going) is refused with an OutputError naming the holder. The kernel drops
    the lock when its process dies, however it dies, so a stale lock file never blocks a
    rerun (on NFS the server does, after its lease). Released by `release()`, which also
    removes the folders this lock created if they are still empty (a refused run leaves
    nothing behind)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created: Path | None = None  # topmost folder this lock had to create

    def acquire(self) -> FolderLock:
        import fcntl
        import socket

        missing = self.folder.absolute()
        top = None
        while not missing.exists() and missing != missing.parent:
            top, missing = missing, missing.parent
        make_dirs(self.folder)
        self._created = top
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                self._remove_created()
                raise output_error(e, self.folder, "locking") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = ""
                with suppress(OSError):
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # no locks here: go on
                    return self
                raise OutputError(
                    f"{self.folder} is in use by another vidmatte run "
                    f"({holder or 'unknown process'}); wait for it or stop it first"
                ) from None
            try:  # the holder may have removed the file between our open and flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            self._fd = fd
            return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlink_quiet(self.path)  # while still holding it: see the inode check above
            os.close(fd)
        self._remove_created()

    def _remove_created(self) -> None:
        top, self._created = self._created, None
        if top is None:
            return
        p = self.folder.absolute()
        while True:  # remove empty folders from the leaf up to the topmost one we made
            try:
                p.rmdir()
            except OSError:
                return
            if p == top:
                return
            p = p.parent

    def keep_folder(self) -> None:
        """The folder now holds output: do not remove it on release."""
        self._created = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
