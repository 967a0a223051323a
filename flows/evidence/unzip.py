"""Reading an untrusted zip within limits: how many members, how large, how compressed, how deep.

A bundle may come from anyone, so nothing in it is trusted before it is checked, least of all the
sizes it declares. What the zip's directory already tells (the member count, each member's
declared size and compression ratio, their total) is refused before anything is decompressed;
what only decompressing tells is counted as the bytes stream by, and reading stops at the limit.
Members stream in chunks to a file or a hash, so memory stays flat whatever a member holds, and
JSON nesting is measured by a scan of the bytes before the recursive parser ever sees them.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

MAX_MEMBERS = 10_000
"""Members in one zip: ten times an incident of 1,000 artifacts and its few fixed files."""
MAX_MEMBER_SIZE = 256 * MiB
"""Uncompressed bytes of one member: the file collector keeps 100 MiB of a file by default."""
MAX_TOTAL_SIZE = 16 * GiB
"""Uncompressed bytes of all members together: 1,000 artifacts of 16 MiB each."""
MAX_RATIO = 500
"""Uncompressed to compressed bytes of one member. Evidence deflates 3 to 10 times, a log that
repeats one line about 300 times; only runs of one byte come near deflate's ceiling of 1,032."""
RATIO_FLOOR = MiB
"""Members this small skip the ratio check: a few KiB of zeros cost nothing to read."""
MAX_DOCUMENT_SIZE = 16 * MiB
"""Bytes of a JSON file read whole (manifest.json, head.json, ...): a manifest listing
MAX_MEMBERS files takes about 2 MiB."""
MAX_LINE_LENGTH = 16 * MiB
"""Bytes of one line (a ledger record): actions keep 64 KiB of output and alerts are 1 MiB at
most, so real records stay under 2 MiB."""
MAX_JSON_DEPTH = 256
"""Deepest JSON nesting read. Python's json gives up near 1,000 levels with a RecursionError, so
the ledger's writer cannot write deeper; alert payloads are refused past 32 levels."""
CHUNK = MiB
"""Bytes read at a time: what a member costs in memory, whatever its size."""

_DIRECTORY_ENTRY = KiB
"""Central directory bytes allowed per member: 46 fixed, then a name and extras (ours: under 200).
zipfile reads the whole directory into memory, so its size is checked before zipfile opens it."""
_PLAIN_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
"""zipfile inflates deflate a chunk at a time, but bzip2 and LZMA without a bound per read."""
_UNSUPPORTED_FLAGS = 0x01 | 0x20 | 0x40
"""Encrypted, patch data, strong encryption: an exported bundle has none of them."""

_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_LOCATOR = struct.Struct("<4sLQL")
_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[{]}")


@dataclass(frozen=True)
class Limits:
    """How much of an untrusted zip is read at most; the defaults are the constants above."""

    members: int = MAX_MEMBERS
    member_size: int = MAX_MEMBER_SIZE
    total_size: int = MAX_TOTAL_SIZE
    ratio: int = MAX_RATIO
    document_size: int = MAX_DOCUMENT_SIZE
    line_length: int = MAX_LINE_LENGTH
    json_depth: int = MAX_JSON_DEPTH


class Refused(Exception):
    """A zip or a member past a limit; each problem names the limit and the member."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class Damaged(Exception):
    """A member that does not read back as its zip entry says (checksum, size, data)."""


@dataclass(frozen=True)
class Digest:
    """A member's sha256 and its size, both of the bytes it actually decompressed to."""

    sha256: str
    size: int


class UntrustedZip:
    """A zip opened for reading within `Limits`: every byte read counts against them.

    Open it with `open_zip`, which refuses what the zip's directory already shows past a limit.
    """

    def __init__(self, bundle: zipfile.ZipFile, limits: Limits) -> None:
        self._zip = bundle
        self.limits = limits
        self._total = 0

    def __enter__(self) -> UntrustedZip:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._zip.close()

    def names(self) -> list[str]:
        """Every member's name, in the zip's order (duplicates included)."""
        return self._zip.namelist()

    def digest(self, name: str, target: Path | None = None) -> Digest:
        """Hash a member as it streams by, writing it to `target` when given."""
        digest, size = hashlib.sha256(), 0
        with open(target, "wb") if target is not None else nullcontext() as out:
            for chunk in self._chunks(name):
                digest.update(chunk)
                size += len(chunk)
                if out is not None:
                    out.write(chunk)
        return Digest(digest.hexdigest(), size)

    def copy_lines(self, name: str, target: Path) -> Digest:
        """Stream a member of JSON lines to `target`, each line within the length and depth limits.

        A line is named as a record (`record 3`), as the ledger counts them.
        """
        digest, size = hashlib.sha256(), 0
        lines = _Lines(name, self.limits)
        with open(target, "wb") as out:
            for chunk in self._chunks(name):
                lines.feed(chunk)
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return Digest(digest.hexdigest(), size)

    def read_document(self, name: str) -> tuple[bytes, Digest]:
        """A JSON member read whole, within the document size and nesting depth limits."""
        limit = self.limits.document_size
        declared = self._zip.getinfo(name).file_size
        if declared > limit:
            raise Refused(
                f"{name}: declares {_amount(declared)}, past the {_amount(limit)} limit for a "
                "JSON file"
            )
        parts, size = [], 0
        for chunk in self._chunks(name):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise Refused(
                    f"{name}: decompresses past the {_amount(limit)} limit for a JSON file"
                )
        data = b"".join(parts)
        if nests_deeper(data, self.limits.json_depth):
            raise Refused(
                f"{name}: JSON nested deeper than the {self.limits.json_depth}-level limit"
            )
        return data, Digest(hashlib.sha256(data).hexdigest(), size)

    def _chunks(self, name: str) -> Iterator[bytes]:
        """The member's bytes a chunk at a time, refused within a chunk of passing a limit.

        zipfile stops at the size the entry declares; counting here holds the limits whatever
        the entry declares, and a member that ends short of its declared size is damaged.
        """
        info = self._zip.getinfo(name)
        size = 0
        try:
            with self._zip.open(info) as member:
                while chunk := member.read(CHUNK):
                    size += len(chunk)
                    self._total += len(chunk)
                    problem = _size_problem(name, size, info.compress_size, self.limits, None)
                    if problem is None and self._total > self.limits.total_size:
                        total = _amount(self.limits.total_size)
                        problem = f"{name}: decompresses past the {total} total limit"
                    if problem is not None:
                        raise Refused(problem)
                    yield chunk
        except zipfile.BadZipFile as error:
            raise Damaged("checksum mismatch" if "CRC" in str(error) else str(error)) from None
        except EOFError:
            raise Damaged("its data ends early (truncated?)") from None
        except zlib.error:
            raise Damaged("not valid deflate data") from None
        except OSError as error:  # an offset in its entry past the file's end, or beyond
            raise Damaged(f"unreadable where its entry points ({error.strerror})") from None
        if size != info.file_size:
            raise Damaged(f"decompresses to {size} bytes, not the {info.file_size} it declares")


def open_zip(path: Path, limits: Limits | None = None) -> UntrustedZip:
    """Open an untrusted zip, refusing one whose directory already shows it past `limits`.

    Raises Refused for a limit, OSError or zipfile.BadZipFile for a file that is not a zip.
    """
    limits = limits or Limits()
    with open(path, "rb") as handle:
        extent = _directory_extent(handle)
    if extent is None:
        raise zipfile.BadZipFile("no end of central directory record")
    entries, directory = extent
    if entries > limits.members:
        raise Refused(
            f"{path}: holds {entries:,} members, past the {limits.members:,}-member limit"
        )
    if directory > limits.members * _DIRECTORY_ENTRY:
        raise Refused(
            f"{path}: its central directory takes {_amount(directory)}, past the "
            f"{_amount(limits.members * _DIRECTORY_ENTRY)} that the "
            f"{limits.members:,}-member limit allows"
        )
    bundle = zipfile.ZipFile(path)
    problems = _declared_problems(path, bundle.infolist(), limits)
    if problems:
        bundle.close()
        raise Refused(*problems)
    return UntrustedZip(bundle, limits)


def nests_deeper(data: bytes, levels: int) -> bool:
    """Whether the JSON text in `data` nests arrays and objects deeper than `levels`.

    Counts brackets outside strings, with no recursion. A text with a NUL byte (UTF-16 or
    UTF-32, never JSON in UTF-8) has its strings' brackets counted too, which only overcounts.
    """
    if data.count(b"[") + data.count(b"{") <= levels:
        return False  # no deeper than its openers: the common case, decided in C
    if b"\0" not in data:
        data = _STRING.sub(b"", data)
    brackets = data.translate(_BRACKETS, _NOT_BRACKETS)
    # As signed bytes, an opener is +1 and a closer -1: the running sum is the depth.
    return max(accumulate(memoryview(brackets).cast("b")), default=0) > levels


class _Lines:
    """Checks each complete line of a stream within the line length and nesting depth limits."""

    def __init__(self, name: str, limits: Limits) -> None:
        self._name, self._limits = name, limits
        self._partial = b""
        self._seq = 0

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()  # the line the next chunk continues
        for line in lines:
            self._seq += 1
            self._check(line)
        if len(self._partial) > self._limits.line_length:
            self._refuse_length(self._seq + 1)

    def _check(self, line: bytes) -> None:
        if len(line) > self._limits.line_length:
            self._refuse_length(self._seq)
        if nests_deeper(line, self._limits.json_depth):
            raise Refused(
                f"{self._name}: record {self._seq}: JSON nested deeper than the "
                f"{self._limits.json_depth}-level limit"
            )

    def _refuse_length(self, seq: int) -> None:
        raise Refused(
            f"{self._name}: record {seq}: longer than the "
            f"{_amount(self._limits.line_length)} line limit"
        )


def _declared_problems(path: Path, members: list[zipfile.ZipInfo], limits: Limits) -> list[str]:
    """What the central directory alone shows past a limit: nothing is decompressed for it."""
    if len(members) > limits.members:
        return [_too_many(path, len(members), limits)]
    problems = []
    for info in members:
        name = info.filename
        if info.compress_type not in _PLAIN_METHODS:
            problems.append(
                f"{name}: compressed with zip method {info.compress_type}; "
                "a bundle's members are stored or deflated"
            )
        elif info.flag_bits & _UNSUPPORTED_FLAGS:
            problems.append(f"{name}: encrypted or patch data; a bundle's members are plain")
        else:
            problem = _size_problem(name, info.file_size, info.compress_size, limits, "declares")
            problems += [problem] if problem else []
    total = sum(info.file_size for info in members)
    if not problems and total > limits.total_size:
        problems.append(
            f"{path}: its members declare {_amount(total)} in all, past the "
            f"{_amount(limits.total_size)} total limit"
        )
    return problems


def _too_many(path: Path, count: int, limits: Limits) -> str:
    return f"{path}: holds {count:,} members, past the {limits.members:,}-member limit"


def _size_problem(
    name: str, size: int, compressed: int, limits: Limits, declares: str | None
) -> str | None:
    """A member of `size` bytes (declared, or decompressed so far) past the size or ratio limit."""
    if size > limits.member_size:
        what = f"declares {_amount(size)}," if declares else "decompresses"
        return f"{name}: {what} past the {_amount(limits.member_size)} member limit (zip bomb?)"
    if size > RATIO_FLOOR and size > limits.ratio * max(compressed, 1):
        what = f"declares a {size // max(compressed, 1):,}:1 ratio," if declares else "decompresses"
        return f"{name}: {what} past the {limits.ratio}:1 compression ratio limit (zip bomb?)"
    return None


def _directory_extent(handle: BinaryIO) -> tuple[int, int] | None:
    """The member count and central directory size the zip's end records declare, as zipfile
    finds them (the end record, or the zip64 one it points to); None when there is none."""
    end = handle.seek(0, 2)
    if end < _END.size:
        return None
    handle.seek(end - _END.size)
    tail = handle.read()
    at = end - _END.size
    if not (tail.startswith(_END_SIGNATURE) and tail[-2:] == b"\0\0"):
        # An archive comment follows the record: zipfile takes the last signature before it.
        start = max(0, end - _END.size - 0xFFFF)
        handle.seek(start)
        tail = handle.read()
        found = tail.rfind(_END_SIGNATURE)
        if found < 0 or len(tail) - found < _END.size:
            return None
        at, tail = start + found, tail[found : found + _END.size]
    fields = _END.unpack(tail)
    entries, directory = fields[4], fields[5]
    if at >= _LOCATOR.size + _END64.size:
        handle.seek(at - _LOCATOR.size - _END64.size)
        before = handle.read(_END64.size + _LOCATOR.size)
        if _LOCATOR.unpack_from(before, _END64.size)[0] == _LOCATOR_SIGNATURE:
            record = _END64.unpack_from(before)
            if record[0] == _END64_SIGNATURE:
                entries, directory = record[7], record[8]
    return entries, directory


def _amount(size: int) -> str:
    """Bytes for a person: `256 MiB`, `1.5 GiB`, `100 bytes`."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} bytes"
