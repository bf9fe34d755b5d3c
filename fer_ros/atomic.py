"""Write a file (or a folder of outputs) so that a reader, or a crash, never sees half of it: a
temporary one beside it, renamed into place when complete."""

import glob
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from fer_ros.errors import FerRosError, one_line

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
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent
    )
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
        try:
            if _writer_gone(tmp, tmp.name[len(prefix) : -len(".tmp")]):
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # its writer finished (or another cleaner came first)
            pass
    return removed


def _writer_gone(tmp: Path, tag: str) -> bool:
    """Whether the writer of temporary `tmp` is gone: `tag` starts with its pid and a "-" (no such
    process); a tag without one (older versions) counts as gone when untouched for an hour."""
    pid, sep, _ = tag.partition("-")
    if sep and pid.isdigit():
        return not _running(int(pid))
    return time.time() - tmp.stat().st_mtime > STALE_AFTER_S


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
def staged_folder(out, force: bool = False, error=FerRosError, *, made_by=None, inputs=()):
    """Yield a temporary folder beside `out`; it becomes `out` only if the block completes.

    An error, Ctrl-C, SIGTERM or SIGHUP removes it, so a folder named `out` is always a finished
    run; a process killed outright leaves `<out>.incomplete-<pid>-*`, which the next run for `out`
    deletes. An `out` that exists and is not empty raises `error` unless `force`, and even then it
    is replaced only when it is a folder `made_by(out)` recognises as this command's earlier
    output, and is not the working folder, `/`, one of `inputs` or a folder holding any of them
    (`check_replaceable`).
    """
    out = Path(
        os.path.abspath(out)
    )  # "." and ".." name the folders they are, not a name to create
    check_replaceable(out, force, error, made_by, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_incomplete(out)
        tmp = Path(
            tempfile.mkdtemp(prefix=f"{out.name}.incomplete-{os.getpid()}-", dir=out.parent)
        )
    except OSError as err:
        raise error(f"cannot write the output folder {out}: {one_line(err)}") from None
    tmp.chmod(usual_mode(directory=True))
    try:
        with _signals_raise():
            yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(
            out
        )  # check_replaceable let only a recognised folder (or an empty one) through
    os.replace(tmp, out)


def check_replaceable(out: Path, force: bool, error=FerRosError, made_by=None, inputs=()) -> None:
    """Raise `error` (one line) unless writing the folder `out` can destroy nothing but an earlier
    output of the same command: `out` is new or an empty folder, or `force` is given and `out` is a
    real folder that `made_by` recognises. Never the working folder, `/`, an input or a folder that
    holds one, whatever `force` says."""
    if not os.path.lexists(out):
        return
    real = out.resolve()
    for protected, what in _protected(inputs):
        if real == protected:
            raise error(f"{out} is {what}: it cannot be an output folder; choose a new --out")
    if out.is_symlink() or not out.is_dir():
        raise error(f"{out} already exists and is not a folder: choose another output folder")
    if not any(out.iterdir()):
        return
    if not force:
        raise error(
            f"{out} already exists: choose another output folder or pass --force to replace it"
        )
    if made_by is None or not made_by(out):
        raise error(
            f"{out} is not an earlier output of this command (--force only replaces those): "
            "remove it "
            "yourself or choose another output folder"
        )


def _protected(inputs) -> list[tuple[Path, str]]:
    """(path, what it is) of every folder an output must never replace."""
    found = [(Path("/"), "the root folder")]
    cwd = Path.cwd().resolve()
    found += [(cwd, "the working folder")] + [
        (p, "a parent of the working folder") for p in cwd.parents
    ]
    for given in inputs:
        path = Path(given).resolve()
        found += [(path, "the input")] + [(p, "a folder holding the input") for p in path.parents]
    return found


def folder_holds(required: str, allowed: set[str] | None = None, patterns: tuple[str, ...] = ()):
    """A `made_by` test: the folder holds `required` and nothing but `allowed` names or
    `patterns`."""

    def test(folder: Path) -> bool:
        names = [p.name for p in folder.iterdir()]
        return required in names and all(
            n in (allowed or ()) or n == required or any(Path(n).match(p) for p in patterns)
            for n in names
        )

    return test


def remove_stale_incomplete(out: Path) -> list[Path]:
    """Delete `<out>.incomplete-*` folders whose writer is gone (killed outright: no `except`
    ran)."""
    prefix = f"{out.name}.incomplete-"
    removed = []
    for tmp in out.parent.glob(glob.escape(prefix) + "*"):
        try:
            if (
                tmp.is_dir()
                and not tmp.is_symlink()
                and _writer_gone(tmp, tmp.name[len(prefix) :])
            ):
                shutil.rmtree(tmp)
                removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so staged outputs are removed."""


@contextmanager
def _signals_raise():
    """SIGTERM and SIGHUP raise `Terminated` (exit 128 + signal) while the block runs, where they
    would otherwise end the process without cleaning up; a handler someone else installed stays."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, _frame):
        raise Terminated(128 + signum)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, raise_terminated)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
