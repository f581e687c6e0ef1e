"""The forwarder: sends filed instances, or completed studies, to other DICOM nodes by rule.

What the composition (``services.app``, ``services.cli``, ``services.settings``) may use.
"""

from services.forwarder.jobs import retry_failed, summary
from services.forwarder.service import Forwarder
from services.forwarder.settings import ForwarderSettings, ForwardRule

__all__ = ["ForwardRule", "Forwarder", "ForwarderSettings", "retry_failed", "summary"]
