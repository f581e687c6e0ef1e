"""A query/retrieve request's identifier: decoded, made a :class:`~catalog.Query`, looked up in
the index with every failure turned into the reply that says why; and encoded back.

C-FIND, C-MOVE and C-GET share this: the same levels, the same matching, the same scope of a
calling AE, the same refusal past ``receiver.query.max_matches``.
"""

from __future__ import annotations

import asyncio
from io import BytesIO
from typing import Any

import sqlalchemy as sa
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.multival import MultiValue
from pydicom.uid import ImplicitVRLittleEndian

from services.receiver import catalog
from services.receiver.catalog import Match, Query, QueryError, TooManyMatches
from services.receiver.dimse import Reply
from services.receiver.matching import Condition
from services.receiver.operations import Request
from services.receiver.settings import QuerySettings
from shared.db.reader import IndexReader
from shared.dicom.encoding import check_encoded
from shared.log import get_logger

log = get_logger("services.receiver")

# The Patient Root models (FIND, MOVE, GET); the others are Study Root.
PATIENT_ROOT = frozenset(
    {"1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.1.2", "1.2.840.10008.5.1.4.1.2.1.3"}
)
HANDLED = frozenset({0x00080005, 0x00080052})  # Specific Character Set, Query/Retrieve Level
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC001
# An identifier is a few hundred bytes; 1 MiB bounds a hostile one (operations.Gathered).
TOO_LONG = Reply(IDENTIFIER_DOES_NOT_MATCH, "identifier longer than 1 MiB")


class Refused(Exception):
    """The request cannot be answered; ``reply`` says so to the peer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.error_comment)
        self.reply = reply


def read_query(
    request: Request, encoded: bytes, scopes: dict[str, list[str]]
) -> tuple[Dataset, Query]:
    """The identifier and the query it asks; :class:`Refused` (0xA900) with the reason."""
    try:
        identifier = decode(encoded, request.transfer_syntax)
        level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
        patient_root = request.abstract_syntax in PATIENT_ROOT
        catalog.check_level(level, patient_root)
    except (QueryError, ValueError) as error:
        log.warning("query.refused", reason=str(error), calling_ae=request.peer.calling_ae)
        raise Refused(Reply(IDENTIFIER_DOES_NOT_MATCH, str(error)[:64])) from None
    conditions: list[Condition] = []
    returned: list[str] = []
    for element in identifier:
        if element.tag in HANDLED or element.tag.group < 0x0008 or not element.keyword:
            continue
        returned.append(element.keyword)
        if element.VR != "SQ":
            text = text_of(element)
            if text.strip("\\ *"):
                conditions.append(Condition(element.keyword, element.VR, text))
    scope = scopes.get(request.peer.calling_ae)
    accounts = None if scope is None else frozenset(scope)
    return identifier, Query(level, patient_root, conditions, returned, accounts)


async def look_up(
    index: IndexReader,
    query: Query,
    settings: QuerySettings,
    request: Request,
    extra: dict[str, Any] | None = None,
) -> list[Match]:
    """The query's matches; :class:`Refused` with the reason when there are too many or the
    index cannot be read."""
    calling_ae = request.peer.calling_ae
    try:
        async with asyncio.timeout(settings.timeout):
            async with index.connection() as connection:
                return await catalog.search(connection, query, settings.max_matches, extra)
    except TooManyMatches:
        comment = f"over {settings.max_matches} matches: narrow the query"
        log.warning("query.too_many", level=query.level, calling_ae=calling_ae, reason=comment)
        raise Refused(Reply(OUT_OF_RESOURCES, comment)) from None
    except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as error:
        reason = f"the index cannot be read: {type(error).__name__}: {error}"
        log.error("query.failed", level=query.level, calling_ae=calling_ae, reason=reason)
        raise Refused(Reply(UNABLE_TO_PROCESS, reason[:64])) from None


def decode(encoded: bytes, transfer_syntax: str) -> Dataset:
    """The identifier, every element read (so that a broken one fails here, with why)."""
    implicit = transfer_syntax == ImplicitVRLittleEndian
    try:
        check_encoded(encoded, implicit)  # pydicom takes a value cut short without a word
        dataset = read_dataset(BytesIO(encoded), implicit, True)
        for _ in dataset.iterall():
            pass
    except Exception as error:  # pydicom reports a broken data set many ways
        raise ValueError(f"undecodable identifier: {type(error).__name__}: {error}") from None
    return dataset


def encode(dataset: Dataset, transfer_syntax: str) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    write_dataset(buffer, dataset)
    return buffer.getvalue()


def text_of(element: DataElement) -> str:
    """A query key's value as the text matching reads: several values joined by backslashes."""
    return "\\".join(strings_of(element.value))


def strings_of(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)]
