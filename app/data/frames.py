"""A stored data set as a table: read with the same limits as at upload (shared by the
upload path, submission-time validation and the worker)."""

from __future__ import annotations

import pandas as pd

from app.data.storage import Storage
from app.data.tables import TableFormat, TableLimits, read_table
from app.db.models import Dataset
from app.settings import Settings


def table_limits(settings: Settings) -> TableLimits:
    return TableLimits(
        max_rows=settings.max_rows,
        max_columns=settings.max_columns,
        max_decoded_bytes=int(settings.max_decoded_mb * 2**20),
        max_column_name_chars=settings.max_column_name_chars,
    )


def load_frame(storage: Storage, dataset: Dataset, settings: Settings) -> pd.DataFrame:
    """The data set's table, read the same way as at upload."""
    fmt: TableFormat = "parquet" if dataset.format == "parquet" else "csv"
    return read_table(storage.path(dataset.storage_key), fmt, table_limits(settings))
