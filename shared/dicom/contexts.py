"""Presentation-context planning: which contexts to propose, over how few associations.

Each instance is proposed in its own transfer syntax, in a context of its own, plus one
uncompressed context per SOP class as the fallback, so a peer can accept a compressed syntax
for some files and still take the rest uncompressed. A peer allows at most 128 proposed
contexts per association, so instances are grouped into as few associations as fit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

MAX_CONTEXTS = 128
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

Context = tuple[UID, tuple[UID, ...]]  # abstract syntax and the transfer syntaxes offered


@dataclass(frozen=True)
class OutgoingInstance:
    """A file to send, with what its file meta information says about it."""

    path: Path
    sop_class_uid: UID
    sop_instance_uid: UID
    transfer_syntax: UID


@dataclass
class AssociationPlan:
    """The instances one association carries and the contexts it proposes for them."""

    instances: list[OutgoingInstance] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)


def contexts_for(instance: OutgoingInstance) -> list[Context]:
    """The contexts ``instance`` needs: its own syntax first, then the uncompressed fallback."""
    fallback: Context = (instance.sop_class_uid, UNCOMPRESSED)
    if instance.transfer_syntax in UNCOMPRESSED:
        return [fallback]
    return [(instance.sop_class_uid, (instance.transfer_syntax,)), fallback]


def plan_associations(
    instances: Iterable[OutgoingInstance], limit: int = MAX_CONTEXTS
) -> list[AssociationPlan]:
    """Group ``instances`` so no association proposes more than ``limit`` contexts.

    Instances are taken by SOP class and transfer syntax, so those sharing contexts travel
    together and the number of associations stays small.
    """
    ordered = sorted(instances, key=lambda i: (i.sop_class_uid, i.transfer_syntax, str(i.path)))
    plans: list[AssociationPlan] = []
    current = AssociationPlan()
    for instance in ordered:
        needed = [c for c in contexts_for(instance) if c not in current.contexts]
        if current.instances and len(current.contexts) + len(needed) > limit:
            plans.append(current)
            current = AssociationPlan()
            needed = contexts_for(instance)
        current.contexts.extend(needed)
        current.instances.append(instance)
    if current.instances:
        plans.append(current)
    return plans
