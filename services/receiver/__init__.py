"""The receiver: the DICOM listener of the site's AE, feeding the spool and the bus.

What the composition (``services.app``, ``services.cli``, ``services.settings``) may use.
"""

from services.receiver.service import Receiver
from services.receiver.settings import AllowedCaller, ReceiverSettings, TLSSettings

__all__ = ["AllowedCaller", "Receiver", "ReceiverSettings", "TLSSettings"]
