"""Names on disk: every component that comes from a tag value is made safe here.

A component never contains a separator, a NUL or control character, never is ``.`` or ``..``,
never is empty and is bounded in length; :func:`inside` then checks the final path stays under
its root. Account trees are often served over SMB, so a component is also one a Windows share
can hold: no device name (``CON``, ``NUL.txt``, ``com1``), no trailing dot or space, and
sibling folders differ in more than case (the claims compare their :func:`folder_key`).
Names stay readable: letters of any script, digits and a few punctuation marks are kept,
everything else becomes ``_``.
"""

from __future__ import annotations

import hashlib
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MAX_COMPONENT = 80
MAX_COMPONENT_BYTES = 200  # filesystems allow 255 bytes a component; leave room for suffixes
_KEPT_PUNCTUATION = set("-_.,+()")
# Names Windows keeps for devices, whatever their case or extension.
WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL"}) | frozenset(
    f"{port}{digit}" for port in ("COM", "LPT") for digit in "0123456789¹²³"
)


def safe_component(value: str, fallback: str = "UNKNOWN", limit: int = MAX_COMPONENT) -> str:
    """``value`` as one safe, readable path component, on Linux and on a Windows share."""
    text = unicodedata.normalize("NFC", value)
    kept = [c if c.isalnum() or c in _KEPT_PUNCTUATION else "_" for c in text]
    cleaned = "_".join(part for part in "".join(kept).split("_") if part)
    cleaned = cleaned.strip("._ ")[:limit]
    while len(cleaned.encode()) > MAX_COMPONENT_BYTES:
        cleaned = cleaned[:-1]
    # Windows (and so an SMB share of the accounts tree) trims a trailing dot or space.
    cleaned = cleaned.rstrip("._ ") or fallback
    base, dot, extension = cleaned.partition(".")
    if base.upper() in WINDOWS_DEVICES:  # CON, NUL.txt, com1 ... name devices on Windows
        cleaned = f"{base}_{dot}{extension}"
    return cleaned


def folder_key(name: str) -> str:
    """What makes two sibling names one on a case-insensitive share (Windows, macOS)."""
    return unicodedata.normalize("NFC", name).casefold()


def person_name(value: object) -> str:
    """A DICOM PN for a folder name: ``DOE^JOHN^^DR`` becomes ``DOE_JOHN``."""
    text = str(value or "")
    alphabetic = text.split("=")[0] or text.replace("=", " ")
    family, _, rest = alphabetic.partition("^")
    given = rest.split("^")[0]
    return safe_component(" ".join(part for part in (family, given) if part.strip()), "")


@dataclass(frozen=True)
class StudyFacts:
    """The header values a study folder's name may use."""

    study_instance_uid: str
    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession: str = ""
    study_id: str = ""
    modality: str = ""


def study_folder(template: str, facts: StudyFacts) -> str:
    """The study folder name from ``router.study_folder_template`` (its fields are checked
    against :data:`STUDY_FOLDER_FIELDS` when the settings are read)."""
    uid_hash = hashlib.sha1(facts.study_instance_uid.encode()).hexdigest()[:8]
    fields = _folder_fields(facts, uid_hash)
    return safe_component(string.Formatter().vformat(template, (), fields), uid_hash, 120)


def _folder_fields(facts: StudyFacts, uid_hash: str) -> dict[str, str]:
    return {
        "patient_name": person_name(facts.patient_name) or "ANONYMOUS",
        "patient_id": safe_component(facts.patient_id, "NOID"),
        "study_date": safe_component(facts.study_date, "NODATE"),
        "study_time": safe_component(facts.study_time.split(".")[0], "NOTIME"),
        "study_description": safe_component(facts.study_description, "NODESCRIPTION"),
        "accession": safe_component(facts.accession, "NOACCESSION"),
        "study_id": safe_component(facts.study_id, "NOSTUDYID"),
        "modality": safe_component(facts.modality, "OT"),
        "study_key": safe_component(facts.accession or facts.study_id, uid_hash),
        "study_uid_hash": uid_hash,
    }


# The fields a study folder template may use.
STUDY_FOLDER_FIELDS = tuple(_folder_fields(StudyFacts(study_instance_uid=""), ""))


def with_suffix(name: str, attempt: int) -> str:
    """The name to try after ``attempt`` clashes: ``name``, ``name_2``, ``name_3``..."""
    return name if attempt == 1 else f"{name}_{attempt}"


def series_folder(number: int | None, description: str, protocol: str, modality: str) -> str:
    """``SSS_SeriesName``: Series Description, else Protocol Name, else Modality."""
    name = next((v for v in (description, protocol, modality) if v and v.strip()), "SERIES")
    return f"{number or 0:03d}_{safe_component(name, 'SERIES', 64)}"


def instance_file(series_number: int | None, echo: int, number: int) -> str:
    """``SSS-EEE-NNNNNN.dcm``; wider numbers widen the field rather than being cut."""
    return f"{series_number or 0:03d}-{echo:03d}-{number:06d}.dcm"


def positive_number(value: object, ceiling: int = 10**12) -> int | None:
    """An IS value as a usable positive number, or ``None`` (absent, zero, negative, absurd)."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    try:
        number = int(str(value).strip()) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and 0 < number < ceiling else None


def inside(root: Path, relative: Path) -> Path:
    """``root / relative``, refusing anything that would leave ``root``."""
    candidate = (root / relative).resolve()
    resolved_root = root.resolve()
    if candidate != resolved_root and resolved_root not in candidate.parents:
        raise ValueError(f"{relative} would leave {root}")
    return candidate
