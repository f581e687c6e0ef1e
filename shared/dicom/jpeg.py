"""What a JPEG stream's frame header says, to decide whether DICOM can carry it unchanged.

Only process 1 (baseline: SOF0, 8-bit, Huffman, sequential) fits the JPEG Baseline transfer
syntax; the photometric interpretation follows PS3.5 8.2.1 from the component count, the
chroma sampling and the Adobe APP14 colour transform flag.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_SOI, _SOS, _EOI = 0xD8, 0xDA, 0xD9
_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


@dataclass(frozen=True)
class JpegFrame:
    """The frame header (SOFn) of a JPEG stream."""

    marker: int
    precision: int
    rows: int
    columns: int
    components: int
    subsampled: bool
    adobe_transform: int | None

    @property
    def is_baseline(self) -> bool:
        """Process 1, which the JPEG Baseline transfer syntax requires."""
        return self.marker == 0xC0 and self.precision == 8 and self.components in (1, 3)

    @property
    def photometric(self) -> str:
        """The DICOM photometric interpretation of the decoded samples."""
        if self.components == 1:
            return "MONOCHROME2"
        if self.adobe_transform == 0:
            return "RGB"  # Adobe APP14 says the components were not transformed to YCbCr
        return "YBR_FULL_422" if self.subsampled else "YBR_FULL"


def read_jpeg_frame(content: bytes) -> JpegFrame | None:
    """The frame header of ``content``, or None when it is not a well-formed JPEG stream."""
    if content[:2] != b"\xff\xd8":
        return None
    position, adobe_transform = 2, None
    while position + 4 <= len(content):
        if content[position] != 0xFF:
            return None
        marker = content[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (_SOS, _EOI):
            return None  # no frame header before the scan
        (length,) = struct.unpack(">H", content[position + 2 : position + 4])
        segment = content[position + 4 : position + 2 + length]
        if marker == 0xEE and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe_transform = segment[11]
        if marker in _SOF_MARKERS:
            return _frame(marker, segment, adobe_transform)
        position += 2 + length
    return None


def _frame(marker: int, segment: bytes, adobe_transform: int | None) -> JpegFrame | None:
    if len(segment) < 6:
        return None
    precision, rows, columns, components = struct.unpack(">BHHB", segment[:6])
    if len(segment) < 6 + 3 * components:
        return None
    factors = {segment[6 + 3 * i + 1] for i in range(components)}  # packed H/V per component
    return JpegFrame(
        marker, precision, rows, columns, components, len(factors) > 1, adobe_transform
    )
