"""The indexer's settings section."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.settings import Section


class IndexerSettings(Section):
    """Indexing filed instances: batch size and wait, and how long to ride out a database outage."""

    batch_size: int = Field(default=200, ge=1, le=5000, description="deliveries per batch")
    max_wait_ms: int = Field(
        default=200, ge=0, le=60_000, description="longest wait for a batch to fill"
    )
    prefetch: int = Field(default=400, ge=1, le=20_000, description="RabbitMQ deliveries in hand")
    database_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a batch is retried this long while the database is unreachable, "
        "before it goes back to the bus as a failed attempt",
    )
    reconcile_page: int = Field(
        default=2000, ge=1, le=100_000, description="audit events read per step at start-up"
    )

    @model_validator(mode="after")
    def _prefetch_holds_a_batch(self) -> IndexerSettings:
        if self.prefetch < self.batch_size:
            raise ValueError("indexer.prefetch must be at least indexer.batch_size")
        return self
