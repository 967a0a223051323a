"""fsync in the background: start flushing a file to disk now, wait for it later.

A step's evidence record must be on disk before the engine moves on, but nothing says the
flush cannot run while Prefect finishes the task's bookkeeping (a few milliseconds of Python).
A Python thread cannot do that well: it needs the interpreter lock to start the call and to
return from it, so it waits behind the very work it should overlap. glibc's POSIX AIO runs
the fsync on its own native thread, which never touches the interpreter. Elsewhere (macOS,
musl) `begin_fsync` flushes at once and `wait` has nothing left to do.

A pending fsync belongs to the process that began it: glibc's AIO thread does not survive a
fork, so nothing may fork between `begin_fsync` and `wait` (the engine waits before its next
step, and actions start processes only inside a step).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
from typing import Any, NamedTuple, Protocol

_SIGEV_NONE = 1  # no signal or thread callback when the request completes


class PendingFsync(Protocol):
    """An fsync begun by `begin_fsync`; `wait` returns once the data is on disk."""

    def wait(self) -> None: ...


class _Done:
    """An fsync that already happened."""

    def wait(self) -> None:
        return None


class _SigEvent(ctypes.Structure):
    # struct sigevent on LP64 Linux: 64 bytes, of which only sigev_notify matters here.
    _fields_ = (
        ("sigev_value", ctypes.c_void_p),
        ("sigev_signo", ctypes.c_int),
        ("sigev_notify", ctypes.c_int),
        ("_rest", ctypes.c_byte * 48),
    )


class _AioControlBlock(ctypes.Structure):
    # glibc's struct aiocb on LP64 Linux (168 bytes); aio_fsync reads aio_fildes and
    # aio_sigevent and keeps its own state in the private fields.
    _fields_ = (
        ("aio_fildes", ctypes.c_int),
        ("aio_lio_opcode", ctypes.c_int),
        ("aio_reqprio", ctypes.c_int),
        ("aio_buf", ctypes.c_void_p),
        ("aio_nbytes", ctypes.c_size_t),
        ("aio_sigevent", _SigEvent),
        ("_next_prio", ctypes.c_void_p),
        ("_abs_prio", ctypes.c_int),
        ("_policy", ctypes.c_int),
        ("_error_code", ctypes.c_int),
        ("_return_value", ctypes.c_ssize_t),
        ("aio_offset", ctypes.c_int64),
        ("_reserved", ctypes.c_char * 32),
    )


class _Aio(NamedTuple):
    """glibc's AIO calls. Only `suspend` blocks, so only it lets go of the interpreter lock:
    handing the lock over costs more than the others' few instructions."""

    fsync: Any
    error: Any
    result: Any
    suspend: Any


def _glibc_aio() -> _Aio | None:
    if sys.platform != "linux" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    if platform.libc_ver()[0] != "glibc" or ctypes.sizeof(_AioControlBlock) != 168:
        return None
    try:
        quick, blocking = ctypes.PyDLL(None), ctypes.CDLL(None)
        aio = _Aio(quick.aio_fsync, quick.aio_error, quick.aio_return, blocking.aio_suspend)
    except (OSError, AttributeError):
        return None
    pointer = ctypes.POINTER(_AioControlBlock)
    for function, argtypes in (
        (aio.fsync, (ctypes.c_int, pointer)),
        (aio.error, (pointer,)),
        (aio.result, (pointer,)),
        (aio.suspend, (ctypes.POINTER(pointer), ctypes.c_int, ctypes.c_void_p)),
    ):
        function.restype = ctypes.c_int
        function.argtypes = argtypes
    aio.result.restype = ctypes.c_ssize_t
    return aio


_AIO = _glibc_aio()


class _AioFsync:
    """An fsync queued to glibc's AIO thread; its control block lives until `wait` is done."""

    def __init__(self, aio: _Aio, block: _AioControlBlock) -> None:
        self._aio = aio
        self._block = block
        self._finished = False

    def wait(self) -> None:
        if self._finished:
            return
        block = ctypes.pointer(self._block)
        waiting = (ctypes.POINTER(_AioControlBlock) * 1)(block)
        while (code := self._aio.error(block)) == errno.EINPROGRESS:
            self._aio.suspend(waiting, 1, None)
        self._aio.result(block)
        self._finished = True
        if code != 0:
            raise OSError(code, f"fsync of the ledger failed: {os.strerror(code)}")


def begin_fsync(fd: int) -> PendingFsync:
    """Start flushing `fd`'s written data and metadata to disk; `wait()` for it to be there."""
    if _AIO is None:
        os.fsync(fd)
        return _Done()
    block = _AioControlBlock(aio_fildes=fd)
    block.aio_sigevent.sigev_notify = _SIGEV_NONE
    if _AIO.fsync(os.O_SYNC, ctypes.byref(block)) != 0:
        # Out of AIO resources (EAGAIN) or an fd AIO refuses: flush here instead.
        os.fsync(fd)
        return _Done()
    return _AioFsync(_AIO, block)


def background_available() -> bool:
    """True when `begin_fsync` returns before the flush is done (glibc AIO)."""
    return _AIO is not None
