"""DICOM network tools: verification (C-ECHO) and sending files (C-STORE), as an SCU.

Both return results rather than print; every failure to reach or talk to the peer is a
:class:`NetError` saying why (see :mod:`shared.dicom.association`), and a file that cannot be
sent is a failed :class:`SendResult`, never an exception, so one bad file does not stop the
others.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom.association import Association
from pynetdicom.status import code_to_category

from shared.dicom.association import (
    DEFAULT_CALLED_AET,
    DEFAULT_CALLING_AET,
    AssociationRejected,
    NetError,
    Peer,
    associate,
    check_host,
)
from shared.dicom.contexts import UNCOMPRESSED, AssociationPlan, OutgoingInstance, plan_associations
from shared.dicom.files import DicomFileError, read_dataset
from shared.settings import Destination

__all__ = [
    "DEFAULT_CALLED_AET",
    "DEFAULT_CALLING_AET",
    "AssociationRejected",
    "EchoResult",
    "NetError",
    "SendResult",
    "SendSummary",
    "client_tls_context",
    "collect_files",
    "echo",
    "peer_of",
    "report_event",
    "send",
    "send_to",
]

VERIFICATION = UID("1.2.840.10008.1.1")
_WARNING_STATUSES = frozenset({0x0001, 0xB000, 0xB006, 0xB007})


@dataclass(frozen=True)
class EchoResult:
    """The C-ECHO status and the round trip, association set-up included."""

    status: int
    category: str
    round_trip: float

    @property
    def ok(self) -> bool:
        return self.status == 0x0000


@dataclass(frozen=True)
class SendResult:
    """What happened to one file; ``transfer_syntax`` is the one it travelled in."""

    path: Path
    outcome: Literal["sent", "failed"]
    reason: str = ""
    status: int | None = None
    transfer_syntax: str | None = None


@dataclass(frozen=True)
class SendSummary:
    """Every file's result, in the order they were sent."""

    results: list[SendResult]

    @property
    def sent(self) -> int:
        return sum(result.outcome == "sent" for result in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.sent


ProgressCallback = Callable[[SendResult, int, int], None]  # result, done so far, total


def echo(
    host: str,
    port: int,
    *,
    called_aet: str = DEFAULT_CALLED_AET,
    calling_aet: str = DEFAULT_CALLING_AET,
    tls: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> EchoResult:
    """Send a C-ECHO to ``host:port`` on a fresh association."""
    peer = Peer(host, port, called_aet, calling_aet, tls, timeout)
    started = time.perf_counter()
    association = associate(peer, [(VERIFICATION, ())])
    try:
        response = association.send_c_echo()
    finally:
        association.release()
    if "Status" not in response:
        raise NetError(f"{peer}: no answer to C-ECHO (timed out or aborted)")
    status = int(response.Status)
    return EchoResult(status, code_to_category(status), time.perf_counter() - started)


def report_event(
    peer: Peer, sop_class: str, sop_instance: str, event_type: int, information: Dataset
) -> int:
    """Send an N-EVENT-REPORT on a new association of ours, as the SCP of ``sop_class``
    (storage commitment's report to a requester that has gone); the peer's status."""
    association = associate(peer, [(UID(sop_class), ())], scp_of=(UID(sop_class),))
    try:
        response, _ = association.send_n_event_report(
            information, event_type, UID(sop_class), UID(sop_instance)
        )
    finally:
        association.release()
    if "Status" not in response:
        raise NetError(f"{peer}: no answer to N-EVENT-REPORT (timed out or aborted)")
    return int(response.Status)


def collect_files(paths: Iterable[Path | str]) -> list[Path]:
    """Files named, and every file under folders named (recursively, sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            found.append(path)
    return found


def send(
    host: str,
    port: int,
    paths: Iterable[Path | str],
    *,
    called_aet: str = DEFAULT_CALLED_AET,
    calling_aet: str = DEFAULT_CALLING_AET,
    tls: ssl.SSLContext | None = None,
    timeout: float = 30.0,
    progress: ProgressCallback | None = None,
) -> SendSummary:
    """Send files and folders over as few associations as the 128-context limit allows.

    A compressed file the peer does not accept in its own syntax is decompressed and sent
    uncompressed. Association failures fail the files of that association, not the call; a
    host name that does not resolve is a :class:`NetError`, as nothing can be sent to it.
    """
    peer = Peer(host, port, called_aet, calling_aet, tls, timeout)
    check_host(peer)
    files = collect_files(paths)
    results: list[SendResult] = []

    def record(result: SendResult) -> None:
        results.append(result)
        if progress is not None:
            progress(result, len(results), len(files))

    instances: list[OutgoingInstance] = []
    for path in files:
        try:
            instances.append(_outgoing(path))
        except DicomFileError as error:
            record(SendResult(path, "failed", str(error).removeprefix(f"{path}: ")))
    for plan in plan_associations(instances):
        for result in _send_plan(peer, plan):
            record(result)
    return SendSummary(results)


def peer_of(name: str, destination: Destination, calling_aet: str) -> Peer:
    """The configured node ``[destinations.<name>]`` as a peer we call as ``calling_aet``."""
    tls = None
    if destination.tls:
        tls = client_tls_context(destination.ca, destination.cert, destination.key)
    return Peer(destination.host, destination.port, name, calling_aet, tls, destination.timeout)


def send_to(
    name: str,
    destination: Destination,
    paths: Iterable[Path | str],
    *,
    calling_aet: str,
    progress: ProgressCallback | None = None,
) -> SendSummary:
    """:func:`send` to the configured node ``[destinations.<name>]``."""
    peer = peer_of(name, destination, calling_aet)
    return send(
        peer.host,
        peer.port,
        paths,
        called_aet=name,
        calling_aet=calling_aet,
        tls=peer.tls,
        timeout=peer.timeout,
        progress=progress,
    )


def client_tls_context(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    *,
    verify: bool = True,
) -> ssl.SSLContext:
    """A TLS client context: the peer checked against ``ca_file`` (or the system store),
    and our certificate presented when ``cert_file`` is given."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    except OSError as error:  # ssl.SSLError included
        raise NetError(f"TLS set-up failed: CA certificates {ca_file}: {error}") from None
    try:
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except OSError as error:
        raise NetError(f"TLS set-up failed: certificate {cert_file}: {error}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _outgoing(path: Path) -> OutgoingInstance:
    dataset = read_dataset(path)
    meta = dataset.file_meta
    sop_class = dataset.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID")
    sop_instance = dataset.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID")
    syntax = meta.get("TransferSyntaxUID")
    if not (sop_class and sop_instance and syntax):
        raise DicomFileError(f"{path}: no SOP Class, SOP Instance or Transfer Syntax UID")
    return OutgoingInstance(path, UID(sop_class), UID(sop_instance), UID(syntax))


def _send_plan(peer: Peer, plan: AssociationPlan) -> Iterator[SendResult]:
    try:
        association = associate(peer, plan.contexts)
    except NetError as error:
        for instance in plan.instances:
            yield SendResult(instance.path, "failed", str(error))
        return
    accepted = {
        (str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in association.accepted_contexts
    }
    try:
        for instance in plan.instances:
            if not association.is_established:
                yield SendResult(instance.path, "failed", "the association was lost")
                continue
            yield _send_instance(association, instance, accepted)
    finally:
        if association.is_established:
            association.release()


def _send_instance(
    association: Association, instance: OutgoingInstance, accepted: set[tuple[str, str]]
) -> SendResult:
    sop, syntax = instance.sop_class_uid, instance.transfer_syntax
    uncompressed = [ts for ts in UNCOMPRESSED if (sop, ts) in accepted]
    payload: Path | Dataset
    if (sop, syntax) in accepted or (not syntax.is_compressed and uncompressed):
        try:
            payload = _whole(instance)
        except DicomFileError as error:
            return SendResult(
                instance.path, "failed", str(error).removeprefix(f"{instance.path}: ")
            )
        sent_as = syntax if (sop, syntax) in accepted else uncompressed[0]
    elif uncompressed:
        try:
            payload = _decompressed(instance)
        except (DicomFileError, RuntimeError, ValueError, NotImplementedError) as error:
            reason = f"the peer wants it uncompressed, and decompressing failed: {error}"
            return SendResult(instance.path, "failed", reason.splitlines()[0])
        sent_as = uncompressed[0]
    else:
        reason = f"the peer accepted {sop.name} neither in {syntax.name} nor uncompressed"
        return SendResult(instance.path, "failed", reason)
    try:
        response = association.send_c_store(payload)
    except (OSError, ValueError, AttributeError, RuntimeError) as error:
        return SendResult(instance.path, "failed", f"C-STORE not sent: {error}")
    if "Status" not in response:
        return SendResult(instance.path, "failed", "no C-STORE response (timed out or aborted)")
    status = int(response.Status)
    if status == 0x0000 or status in _WARNING_STATUSES:
        return SendResult(instance.path, "sent", code_to_category(status), status, sent_as)
    reason = f"refused: 0x{status:04X} ({code_to_category(status)})"
    return SendResult(instance.path, "failed", reason, status, sent_as)


def _whole(instance: OutgoingInstance) -> Dataset:
    """The whole data set, read here so a truncated file fails with a reason, not inside
    pynetdicom (which cannot send a data set that reads back empty)."""
    dataset = read_dataset(instance.path, with_pixels=True)
    if len(dataset) == 0:
        raise DicomFileError(f"{instance.path}: no data elements could be read (truncated?)")
    return dataset


def _decompressed(instance: OutgoingInstance) -> Dataset:
    dataset = read_dataset(instance.path, with_pixels=True)
    dataset.decompress(generate_instance_uid=False)
    return dataset
