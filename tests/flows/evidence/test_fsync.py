"""fsync in the background: the flush runs off the interpreter and reports its failures."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

from flows.evidence.fsync import background_available, begin_fsync


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc AIO only"
)
def test_glibc_linux_flushes_in_the_background() -> None:
    """On glibc Linux the flush is queued to glibc's AIO thread, not done inline."""
    assert background_available()


def test_wait_returns_once_the_data_is_flushed(tmp_path: Path) -> None:
    """Written data is there and the wait returns; a second wait is harmless."""
    fd = os.open(tmp_path / "file", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"line\n")
        pending = begin_fsync(fd)
        pending.wait()
        pending.wait()
    finally:
        os.close(fd)
    assert (tmp_path / "file").read_bytes() == b"line\n"


def test_a_failed_flush_raises() -> None:
    """fsync on a pipe fails (EINVAL): the failure reaches the caller, never silently lost."""
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError):
            begin_fsync(write_end).wait()
    finally:
        os.close(read_end)
        os.close(write_end)
