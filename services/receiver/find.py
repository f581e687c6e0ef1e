"""Query/Retrieve C-FIND SCP (PS3.4 C.4.1, C.6.1 and C.6.2): Patient Root and Study Root, at
the PATIENT, STUDY, SERIES and IMAGE levels, answered from the index.

The identifier is decoded in its own character set; each match goes back as a pending
response holding the keys asked for, in the query's character set when it can carry the
values, else in UTF-8 (ISO_IR 192). The peer may cancel (C-CANCEL-RQ) between two responses.
A calling AE bound to accounts (``receiver.query.scopes``) finds only those accounts' studies.
The index is read at the first query, not at start-up: a receiver whose database is away
still stores, and its queries fail with the reason (0xC001).
"""

from __future__ import annotations

import asyncio
from io import BytesIO

import sqlalchemy as sa
from pydicom import config
from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from services.receiver import catalog
from services.receiver.catalog import Match, Query, QueryError, TooManyMatches
from services.receiver.dimse import C_FIND, Reply
from services.receiver.matching import Condition
from services.receiver.operations import Request
from services.receiver.settings import QuerySettings
from shared.db.reader import IndexReader
from shared.dicom.encoding import check_encoded
from shared.log import get_logger

log = get_logger("services.receiver")

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
ABSTRACT_SYNTAXES = (PATIENT_ROOT, STUDY_ROOT)
TRANSFER_SYNTAXES: list[str | UID] = [ImplicitVRLittleEndian, ExplicitVRLittleEndian]

SUCCESS, PENDING, CANCEL = 0x0000, 0xFF00, 0xFE00
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC001
LONGEST_IDENTIFIER = 1024 * 1024  # a query is a few hundred bytes; this bounds a hostile one
_NUMBERS = {"US": int, "UL": int, "SS": int, "SL": int, "FL": float, "FD": float}
_HANDLED = {0x00080005, 0x00080052}  # Specific Character Set, Query/Retrieve Level


class Find:
    """Answers C-FIND on the Patient Root and Study Root information models."""

    commands = frozenset({C_FIND})

    def __init__(self, index: IndexReader, ae_title: str, settings: QuerySettings) -> None:
        self._index = index
        self._ae_title = ae_title
        self._settings = settings

    async def perform(self, request: Request) -> Reply:
        return Reply(IDENTIFIER_DOES_NOT_MATCH, "a C-FIND-RQ needs an identifier")

    def receive(self, request: Request) -> _Identifier:
        return _Identifier(self, request)

    async def answer(self, request: Request, encoded: bytes) -> Reply:
        peer = request.peer
        try:
            identifier = decode(encoded, request.transfer_syntax)
            level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
            catalog.check_level(level, request.abstract_syntax == PATIENT_ROOT)
            query = self._query(request, identifier, level)
        except (QueryError, ValueError) as error:
            log.warning("find.refused", reason=str(error), calling_ae=peer.calling_ae)
            return Reply(IDENTIFIER_DOES_NOT_MATCH, str(error)[:64])
        try:
            async with asyncio.timeout(self._settings.timeout):
                async with self._index.connection() as connection:
                    matches = await catalog.search(connection, query, self._settings.max_matches)
        except TooManyMatches:
            comment = f"over {self._settings.max_matches} matches: narrow the query"
            log.warning("find.too_many", level=level, calling_ae=peer.calling_ae, reason=comment)
            return Reply(OUT_OF_RESOURCES, comment)
        except (OSError, TimeoutError, sa.exc.SQLAlchemyError) as error:
            reason = f"the index cannot be read: {type(error).__name__}: {error}"
            log.error("find.failed", level=level, calling_ae=peer.calling_ae, reason=reason)
            return Reply(UNABLE_TO_PROCESS, reason[:64])
        log.info(
            "find",
            level=level,
            keys=sorted(c.keyword for c in query.conditions),
            matches=len(matches),
            calling_ae=peer.calling_ae,
            peer_address=peer.address,
        )
        for match in matches:
            if request.progress.cancelled:
                log.info("find.cancelled", level=level, calling_ae=peer.calling_ae)
                return Reply(CANCEL)
            response = self._response(identifier, match, level)
            await request.progress.pending(
                Reply(PENDING, attributes=encode(response, request.transfer_syntax))
            )
        return Reply(CANCEL if request.progress.cancelled else SUCCESS)

    def _query(self, request: Request, identifier: Dataset, level: str) -> Query:
        conditions: list[Condition] = []
        returned: list[str] = []
        for element in identifier:
            if element.tag in _HANDLED or element.tag.group < 0x0008 or not element.keyword:
                continue
            returned.append(element.keyword)
            if element.VR != "SQ":
                text = _text(element)
                if text.strip("\\ *"):
                    conditions.append(Condition(element.keyword, element.VR, text))
        scope = self._settings.scopes.get(request.peer.calling_ae)
        return Query(
            level,
            request.abstract_syntax == PATIENT_ROOT,
            conditions,
            returned,
            None if scope is None else frozenset(scope),
        )

    def _response(self, identifier: Dataset, match: Match, level: str) -> Dataset:
        elements: list[DataElement] = []
        for element in identifier:
            if element.tag in _HANDLED or element.tag.group < 0x0008:
                continue
            elements.append(self._answered(element, match))
        texts = [v for e in elements if e.VR in _TEXT_VRS for v in _strings(e.value)]
        response = Dataset()
        charset = _charset(identifier.get("SpecificCharacterSet"), texts)
        if charset:
            response.SpecificCharacterSet = charset
        response.QueryRetrieveLevel = level
        for element in elements:
            response.add(element)
        return response

    def _answered(self, asked: DataElement, match: Match) -> DataElement:
        keyword, vr = asked.keyword, asked.VR
        values: list[object]
        if keyword == "RetrieveAETitle":
            values = [self._ae_title]
        elif keyword == "InstanceAvailability":
            values = ["ONLINE"]
        elif vr == "SQ" or keyword not in match.values:
            found = match.header_element(asked.tag)
            if found is not None:
                return found
            values = []
        else:
            cast = _NUMBERS.get(vr, str)
            values = [cast(v) for v in match.text_values(keyword)]
        value: object = values if len(values) != 1 else values[0]
        if vr == "SQ":
            value = []
        elif not values:
            value = None
        return DataElement(asked.tag, vr, value, validation_mode=config.IGNORE)


class _Identifier:
    """A C-FIND-RQ's identifier, gathered (bounded) until its last fragment."""

    def __init__(self, find: Find, request: Request) -> None:
        self._find = find
        self._request = request
        self._data = bytearray()
        self._too_long = False

    def write(self, fragment: bytes) -> None:
        if len(self._data) + len(fragment) > LONGEST_IDENTIFIER:
            self._too_long = True
            self._data.clear()
        elif not self._too_long:
            self._data += fragment

    async def finish(self) -> Reply:
        if self._too_long:
            return Reply(IDENTIFIER_DOES_NOT_MATCH, "identifier longer than 1 MiB")
        return await self._find.answer(self._request, bytes(self._data))

    def discard(self) -> None:
        self._data.clear()


_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


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


def _text(element: DataElement) -> str:
    """A query key's value as the text matching reads: several values joined by backslashes."""
    return "\\".join(_strings(element.value))


def _strings(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _charset(asked: object, texts: list[str]) -> str | None:
    """The Specific Character Set of a response holding ``texts``: the query's, when it can
    encode them, else UTF-8; none when every text is ASCII and the query named none."""
    terms = [str(t) for t in _strings(asked)]
    if all(text.isascii() for text in texts):
        return "\\".join(terms) or None
    if len(terms) == 1 and terms[0] in python_encoding:
        try:
            for text in texts:
                text.encode(python_encoding[terms[0]])
            return terms[0]
        except UnicodeEncodeError:
            pass
    return "ISO_IR 192"
