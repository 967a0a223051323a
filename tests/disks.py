"""Real disk faults for tests: a small tmpfs to fill up (ENOSPC) or remount read-only (EROFS).

Mounting needs root and a mount namespace that allows it; tests skip, saying why, elsewhere.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def mount_tmpfs(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `folder`; None when mounted, else why it could not be."""
    folder.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if made.returncode == 0 else made.stderr.strip() or "mount failed"


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=False)


@contextmanager
def small_disk(folder: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder` for the block; the test is skipped if it cannot be."""
    refused = mount_tmpfs(folder, size)
    if refused is not None:
        pytest.skip(f"cannot mount a tmpfs for the fault (needs root): {refused}")
    try:
        yield folder
    finally:
        unmount(folder)


def remount(folder: Path, mode: str) -> None:
    """Remount the tmpfs at `folder` `ro` or `rw`."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; returns it, to be removed to make room again."""
    filler = folder / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return filler
