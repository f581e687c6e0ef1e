"""The scan-sheet service: the study monitor and the writer of each study's scan sheet.

What the composition (``services.app``, ``services.cli``, ``services.settings``) may use.
"""

from services.scansheet.content import UnknownStudy
from services.scansheet.render_pdf import pdf_unavailable
from services.scansheet.service import ScanSheets, write_sheet_now
from services.scansheet.settings import Paper, ScanSheetSettings
from services.scansheet.sheet import SheetError, WrittenSheet

__all__ = [
    "Paper",
    "ScanSheetSettings",
    "ScanSheets",
    "SheetError",
    "UnknownStudy",
    "WrittenSheet",
    "pdf_unavailable",
    "write_sheet_now",
]
