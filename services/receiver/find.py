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

import time

from pydicom import config
from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from services.receiver.catalog import Match, Query
from services.receiver.dimse import C_FIND, Reply
from services.receiver.identifier import (
    HANDLED,
    IDENTIFIER_DOES_NOT_MATCH,
    TOO_LONG,
    Refused,
    encode,
    look_up,
    read_query,
    strings_of,
)
from services.receiver.operations import Gathered, Request
from services.receiver.settings import QuerySettings
from shared.db.reader import IndexReader
from shared.log import get_logger

log = get_logger("services.receiver")

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"
ABSTRACT_SYNTAXES = (PATIENT_ROOT, STUDY_ROOT)
TRANSFER_SYNTAXES: list[str | UID] = [ImplicitVRLittleEndian, ExplicitVRLittleEndian]

SUCCESS, PENDING, CANCEL = 0x0000, 0xFF00, 0xFE00
_NUMBERS = {"US": int, "UL": int, "SS": int, "SL": int, "FL": float, "FD": float}


class Find:
    """Answers C-FIND on the Patient Root and Study Root information models."""

    commands = frozenset({C_FIND})

    def __init__(self, index: IndexReader, ae_title: str, settings: QuerySettings) -> None:
        self._index = index
        self._ae_title = ae_title
        self._settings = settings

    async def perform(self, request: Request) -> Reply:
        return Reply(IDENTIFIER_DOES_NOT_MATCH, "a C-FIND-RQ needs an identifier")

    def receive(self, request: Request) -> Gathered:
        return Gathered(request, self.answer, TOO_LONG)

    async def answer(self, request: Request, encoded: bytes) -> Reply:
        peer = request.peer
        started = time.monotonic()
        query: Query | None = None
        try:
            identifier, query = read_query(request, encoded, self._settings.scopes)
            matches = await look_up(self._index, query, self._settings, request)
        except Refused as refused:
            _audit(request, query, 0, refused.reply.status, refused.reply.error_comment)
            return refused.reply
        _audit(request, query, len(matches), SUCCESS)
        level = query.level
        log.info(
            "find",
            level=level,
            keys=sorted(c.keyword for c in query.conditions),
            matches=len(matches),
            lookup_ms=round((time.monotonic() - started) * 1000, 2),
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

    def _response(self, identifier: Dataset, match: Match, level: str) -> Dataset:
        elements: list[DataElement] = []
        for element in identifier:
            if element.tag in HANDLED or element.tag.group < 0x0008:
                continue
            elements.append(self._answered(element, match))
        texts = [v for e in elements if e.VR in _TEXT_VRS for v in strings_of(e.value)]
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


_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


def _audit(
    request: Request, query: Query | None, matches: int, status: int, reason: str = ""
) -> None:
    """The query for the audit trail: who asked, for what (the keys with a value), how many
    matched; a query refused before its keys were read has none."""
    if request.audit is None:
        return
    detail: dict[str, object] = {
        "sop_class_uid": request.abstract_syntax,
        "level": query.level if query else None,
        "keys": {c.keyword: c.text for c in query.conditions} if query else {},
        "matches": matches,
        "status": status,
    }
    if reason:
        detail["reason"] = reason
    request.audit.report("query", detail)


def _charset(asked: object, texts: list[str]) -> str | None:
    """The Specific Character Set of a response holding ``texts``: the query's, when it can
    encode them, else UTF-8; none when every text is ASCII and the query named none."""
    terms = [str(t) for t in strings_of(asked)]
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
