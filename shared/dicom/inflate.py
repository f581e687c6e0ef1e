"""A deflated data set read as a stream: inflated only as far as it is read, never held whole.

A Deflated Explicit VR Little Endian file (PS3.5 A.5) of 1 MB can inflate to gigabytes, and
pydicom inflates the whole data set into memory before reading it. Header work needs only its
beginning, and a structure check needs to see every byte once: :class:`InflatedStream` gives
both a file-like object that inflates on demand and keeps only a bounded window of what it
inflated, so that a reader can step back a little (as pydicom does after peeking at a tag) and
skip forward as far as it likes, while the memory it holds stays under a few megabytes
whatever the file inflates to. Past ``limit`` inflated bytes it raises
:class:`InflateLimitError`.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import BinaryIO

from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian

from shared.dicom.preamble import data_set_offset

# The transfer syntaxes whose data set is deflated (PS3.5 A.5, and JPIP's referenced form).
DEFLATED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95"})
CHUNK = 1 << 16  # compressed bytes read at a time
WINDOW = 1 << 20  # inflated bytes kept behind the read position, for stepping back


class InflateLimitError(ValueError):
    """The data set inflates beyond the limit it is read with."""


class InflatedStream(io.RawIOBase):
    """The inflated bytes of the raw deflate stream that ``source`` is positioned at."""

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._buffer = bytearray()  # inflated bytes from self._start on
        self._start = 0  # stream position of self._buffer[0]
        self._position = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence == io.SEEK_END:
            raise OSError("the end of an inflated stream is not known before it is read")
        if offset < self._start:
            raise OSError(f"cannot step back to {offset}: only {WINDOW} bytes are kept")
        self._position = max(offset, 0)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            self._fill(None)
        else:
            self._fill(self._position + size)
        begin = self._position - self._start
        end = len(self._buffer) if size is None or size < 0 else begin + size
        data = bytes(self._buffer[begin:end])
        self._position += len(data)
        self._trim()
        return data

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def _fill(self, until: int | None) -> None:
        """Inflate until the stream reaches position ``until`` (None: its end)."""
        while not self._ended and (until is None or self._start + len(self._buffer) < until):
            compressed = self._inflater.unconsumed_tail or self._source.read(CHUNK)
            if not compressed:
                self._buffer += self._inflater.flush()
                self._ended = True
            else:
                self._buffer += self._inflater.decompress(compressed, CHUNK * 4)
                self._ended = self._inflater.eof
            if self._start + len(self._buffer) > self._limit:
                raise InflateLimitError(f"deflated data set inflates beyond {self._limit} bytes")
            # What lies more than a window behind the read position is never read again: a
            # skip forward (a seek past a large value) inflates through it and lets it go.
            self._drop_behind(self._position)

    def _trim(self) -> None:
        self._drop_behind(self._position)

    def _drop_behind(self, position: int) -> None:
        """Forget inflated bytes more than WINDOW before ``position``."""
        excess = min(position - WINDOW, self._start + len(self._buffer)) - self._start
        if excess > 0:
            del self._buffer[:excess]
            self._start += excess


def inflated_length(source: BinaryIO, limit: int) -> int:
    """How many bytes the raw deflate stream ``source`` is positioned at inflates to, counted
    without keeping them; :class:`InflateLimitError` past ``limit``."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    length = 0
    while not inflater.eof:
        compressed = inflater.unconsumed_tail or source.read(CHUNK)
        if not compressed:
            length += len(inflater.flush())
            break
        length += len(inflater.decompress(compressed, CHUNK * 4))
        if length > limit:
            raise InflateLimitError(f"deflated data set inflates beyond {limit} bytes")
    return length


def inflate_to_file(source: Path, target: Path, limit: int) -> Path:
    """Write ``source``, a deflated Part 10 file, to ``target`` as the Explicit VR Little
    Endian file its data set inflates to, as a stream: what reads a file by its offsets
    (one frame of its pixel data, say) can then read it without inflating it in memory."""
    meta = read_file_meta_info(source)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    encoded = DicomBytesIO()
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_file_meta_info(encoded, meta, enforce_standard=True)
    with source.open("rb") as handle, target.open("wb") as out:
        data_set_offset(handle)
        out.write(b"\0" * 128 + b"DICM" + encoded.getvalue())
        stream = InflatedStream(handle, limit)
        while chunk := stream.read(CHUNK * 4):
            out.write(chunk)
    return target
