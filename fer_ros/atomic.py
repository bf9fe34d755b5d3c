"""Write a file (or a folder of outputs) so that a reader, or a crash, never sees half of it: a
temporary one beside it, renamed into place when complete."""

import glob
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from fer_ros.errors import FerRosError

# A temporary without its writer's process id (fer_ros before it named them) counts as stale once
# it has not been touched for this long: no save of fer_ros takes an hour.
STALE_AFTER_S = 3600.0


def usual_mode(directory: bool = False) -> int:
    """The permissions open() or mkdir() would give under this process's umask (mkstemp and mkdtemp
    give 0600 / 0700, which would outlive the rename)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


@contextmanager
def atomic_file(path):
    """Yield a temporary path next to `path`; when the block succeeds, it replaces `path` at once.

    The data and the rename are flushed to disk (a kill -9 or power loss leaves the old file or the
    new one), and the file gets the usual permissions. They are set after the block, because many
    writers (safetensors, torch.save, ONNX) replace the temporary file rather than write into it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    # The writer's pid in the name: the next writer can tell a live temporary from a killed one's.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, usual_mode())
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries of `path` that a killed writer left (SIGKILL, power loss: no `except`
    ran); those of writers still running are kept. Returns what was deleted."""
    prefix = f".{path.name}."
    removed = []
    for tmp in path.parent.glob(glob.escape(prefix) + "*.tmp"):
        pid, sep, _ = tmp.name[len(prefix):-len(".tmp")].partition("-")
        try:
            stale = not _running(int(pid)) if sep and pid.isdigit() else \
                time.time() - tmp.stat().st_mtime > STALE_AFTER_S
            if stale:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # its writer finished (or another cleaner came first)
            pass
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def atomic_write_text(text: str, path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


@contextmanager
def staged_folder(out, force: bool = False, error=FerRosError):
    """Yield a temporary folder beside `out`; it becomes `out` only if the block completes.

    An error or Ctrl-C removes it, so a folder named `out` is always a finished run (a process
    killed outright leaves `<out>.incomplete-*`, named for what it is). An `out` that exists and is
    not empty raises `error` unless `force`.
    """
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not force:
            raise error(f"{out} already exists: choose another output folder or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.incomplete-", dir=out.parent))
    tmp.chmod(usual_mode(directory=True))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(tmp, out)
