"""Query/Retrieve C-GET SCP (PS3.4 C.4.3): the matching instances sent back on the requester's
own association, as C-STORE sub-operations on the storage contexts for which it took the SCP
role (role selection).

A file goes as filed when the peer accepted its SOP class in its transfer syntax, streamed
from the file a fragment at a time; otherwise it is re-encoded uncompressed (decompressed if
need be) when the peer accepted that, else it fails with the reason. A pending response follows
each sub-operation; a cancel is heard between two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydicom.uid import UID

from services.receiver.dimse import C_GET
from services.receiver.identifier import encode
from services.receiver.operations import Request, SubOperations
from services.receiver.retrieve import Cancelled, Retrieval, Stored, Tally
from shared.dicom.files import DicomFileError, read_dataset
from shared.dicom.preamble import data_set_offset

PATIENT_ROOT = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT = "1.2.840.10008.5.1.4.1.2.2.3"
ABSTRACT_SYNTAXES = (PATIENT_ROOT, STUDY_ROOT)
FRAGMENT = 64 * 1024  # read from a file at once, at most, and the largest fragment sent


class Get(Retrieval):
    """Answers C-GET on the Patient Root and Study Root information models."""

    commands = frozenset({C_GET})
    name = "get"
    operation = "C-GET"

    async def deliver(self, request: Request, instances: list[Stored], tally: Tally) -> None:
        peer = request.progress.sub_operations
        assert peer is not None, "the association sends C-GET's sub-operations"
        origin = (request.peer.calling_ae, request.command.message_id)
        for instance in instances:
            if request.progress.cancelled:
                raise Cancelled
            status, reason = await self._store(peer, instance, origin)
            tally.add(instance, status, reason)
            await request.progress.pending(tally.pending())
        if request.progress.cancelled:
            raise Cancelled

    async def _store(
        self, peer: SubOperations, instance: Stored, origin: tuple[str, int]
    ) -> tuple[int | None, str]:
        chosen = peer.context_for(instance.sop_class, instance.transfer_syntax)
        if chosen is None:
            return None, (
                f"no context for {UID(instance.sop_class).name} in "
                f"{UID(instance.transfer_syntax).name} or uncompressed, with the peer as SCP"
            )
        context_id, syntax = chosen
        try:
            if syntax == instance.transfer_syntax:
                fragments = _streamed(instance)
            else:
                fragments = _chunks(await asyncio.to_thread(_reencoded, instance, syntax))
            status = await peer.store(
                context_id, instance.sop_class, instance.sop_instance, fragments, origin
            )
        # pydicom says it has no decoder for a stored syntax with NotImplementedError, and a
        # decoder's failure with RuntimeError or ValueError: each fails this instance alone.
        except (OSError, DicomFileError, ValueError, RuntimeError, NotImplementedError) as error:
            return None, f"{type(error).__name__}: {error}".splitlines()[0]
        except TimeoutError:
            return None, "no C-STORE response within the DIMSE timeout"
        return status, ""


async def _streamed(instance: Stored) -> AsyncIterator[bytes]:
    """The file's data set as it is stored, a fragment at a time."""
    handle = await asyncio.to_thread(instance.path.open, "rb")
    try:
        await asyncio.to_thread(data_set_offset, handle)
        while fragment := await asyncio.to_thread(handle.read, FRAGMENT):
            yield fragment
    finally:
        handle.close()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), FRAGMENT):
        yield data[start : start + FRAGMENT]


def _reencoded(instance: Stored, syntax: str) -> bytes:
    """The data set in an uncompressed ``syntax`` (decompressed first if it is stored
    compressed)."""
    dataset = read_dataset(instance.path, with_pixels=True)
    if UID(instance.transfer_syntax).is_compressed:
        dataset.decompress(generate_instance_uid=False)
    return encode(dataset, syntax)
