"""The indexer: indexes each filed instance's header in the database, in batches.

What the composition (``services.app``, ``services.cli``, ``services.settings``) may use.
"""

from services.indexer.service import Indexer
from services.indexer.settings import IndexerSettings

__all__ = ["Indexer", "IndexerSettings"]
