"""``atomic_write``: write a file so that nobody ever sees half of it.

The data goes to a temporary file in the target's folder, is flushed and fsynced to disk,
and the temporary file is then renamed over the target with ``os.replace``, which is atomic
on one file system. A reader sees the old file or the whole new one, and a crash (or an
exception, or Ctrl-C) mid-write leaves the old file whole and no temporary file behind.

The temporary file is created with ``open(..., "x")``, so it gets the usual permissions
(0666 less the umask), not ``tempfile.mkstemp``'s owner-only 0600 that would otherwise
survive the rename.
"""

import contextlib
import os
import secrets

WRITE_MODES = ("w", "wb")


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Open ``path`` for writing, atomically: ``with atomic_write(path) as file: ...``.

    ``mode`` "wb" (bytes) or "w" (text, in ``encoding``). The folder is created if
    missing; the file appears at ``path`` only when the ``with`` block ends without an
    exception, replacing any file there. On any exception (BaseException: also
    KeyboardInterrupt) the temporary file is removed and the exception propagates.
    """
    if mode not in WRITE_MODES:
        raise ValueError(f"atomic_write: mode must be one of {WRITE_MODES}, got {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(
        folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    )
    file = open(temporary, mode.replace("w", "x"), encoding=encoding)
    try:
        with file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
