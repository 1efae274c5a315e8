"""Output files written safely: the checks every output path passes before any work starts, and atomic writes
(a temporary file or directory beside the target, renamed over it once complete; removed on an error, on
Ctrl-C and on SIGTERM), so that a target holds the old contents or the new ones, never a partial write.

A checkpoint path's name says its format: a directory (an existing one, a path ending in a separator, or a
name with no suffix) is a DCP checkpoint, ``.safetensors`` a safetensors file, anything else a torch.save file.
"""

import contextlib
import os
import shutil
import signal
import tempfile
import threading

DCP, SAFETENSORS, TORCH_SAVE = "DCP directory", "safetensors file", "torch.save file"
DCP_METADATA = ".metadata"
TORCH_SAVE_LIMIT = 2 << 30  # bytes: above this, a torch.save file (a whole state dict in memory) is refused


class OutputPathError(ValueError):
    """An output path that cannot be written: a missing or read-only folder, or an existing target."""


# ---- output paths -------------------------------------------------------------------------------------


def checkpoint_format(path) -> str:
    """``DCP``, ``SAFETENSORS`` or ``TORCH_SAVE``: what a checkpoint at ``path`` is written as."""
    text = os.fspath(path)
    if os.path.isdir(text) or text.endswith((os.sep, "/")) or not os.path.splitext(text.rstrip("/"))[1]:
        return DCP
    return SAFETENSORS if text.endswith(".safetensors") else TORCH_SAVE


def check_output(path, *, overwrite: bool, directory: bool = False) -> None:
    """Raise ``OutputPathError`` (one line) unless ``path`` can be written: its folder exists and is
    writable, and it does not exist (or ``overwrite``, or it is an empty directory and ``directory``). A
    directory is replaced only if it is empty or a DCP checkpoint (never a folder of other files)."""
    text = os.fspath(path).rstrip("/") or "/"
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise OutputPathError(f"{text}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{text}: folder {folder} is not writable")
    if not os.path.lexists(text):
        return
    if os.path.isdir(text):
        if not directory:
            raise OutputPathError(f"{text} is a directory")
        entries = os.listdir(text)
        if entries and DCP_METADATA not in entries:
            raise OutputPathError(f"{text} is a directory of other files (no {DCP_METADATA}): not replacing it")
        if entries and not overwrite:
            raise OutputPathError(f"{text} exists (add --overwrite to replace it)")
    elif directory:
        raise OutputPathError(f"{text} exists and is not a directory")
    elif not overwrite:
        raise OutputPathError(f"{text} exists (add --overwrite to replace it)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_deferred = {"depth": 0, "pending": []}  # signals that arrived inside ``uninterrupted`` blocks


def _raise_for(signum: int):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _on_signal(signum, _frame):
    if _deferred["depth"]:
        _deferred["pending"].append(signum)
    else:
        _raise_for(signum)


@contextlib.contextmanager
def uninterrupted():
    """A block a signal must not cut in two (``torch.save`` of one chunk: its zip writer cannot unwind
    midway): inside an atomic write, SIGINT or SIGTERM arriving here is raised when the block ends."""
    _deferred["depth"] += 1
    try:
        yield
    finally:
        _deferred["depth"] -= 1
    if not _deferred["depth"] and _deferred["pending"]:
        _raise_for(_deferred["pending"].pop())


@contextlib.contextmanager
def _signals_raise():
    """SIGINT raises KeyboardInterrupt and SIGTERM (or SIGHUP) SystemExit inside, at once or at the end of the
    ``uninterrupted`` block they arrive in, so that a killed save unwinds through its ``finally`` blocks and
    removes its temporary files. Only in the main thread (signal handlers can be set there alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def atomic_file(path):
    """Yield a temporary path in ``path``'s folder; once the block completes, rename it to ``path`` (replacing
    it). On any exception or a killing signal the temporary file is removed and ``path`` left as it was."""
    text = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(text))
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=folder)
    os.close(fd)
    os.chmod(temporary, 0o666 & ~_umask())  # the mode open() would have given it
    try:
        with _signals_raise():
            yield temporary
            os.replace(temporary, text)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@contextlib.contextmanager
def atomic_directory(path):
    """Like ``atomic_file`` for a directory: yield an empty temporary directory beside ``path``; once the
    block completes, it takes ``path``'s name (an existing ``path`` is moved aside first, then removed)."""
    text = os.fspath(path).rstrip("/") or "/"
    folder, name = os.path.split(os.path.abspath(text))
    temporary = tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=folder)
    os.chmod(temporary, 0o777 & ~_umask())
    old = None
    try:
        with _signals_raise():
            yield temporary
            if os.path.isdir(text):
                old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=folder)
                os.rename(text, os.path.join(old, name))
            os.rename(temporary, text)
    finally:
        if os.path.isdir(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
