"""Reading uploaded tables (CSV or Parquet) strictly.

pyarrow parses: it is fast and strict (a row with too many or too few fields is an
error, invalid UTF-8 is an error), so a broken file is rejected with its line number
instead of being half-read. Profiling a read table: app/data/profiling.py; writing
one out as CSV: app/data/export.py."""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.errors import ProblemError, field_problem

TableFormat = Literal["csv", "parquet"]
PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 * 1024
# A header line longer than this is refused (about 100k columns of 160-byte names).
MAX_HEADER_BYTES = 16 * 2**20


# Parquet is read in batches of at most this many decoded bytes (of fixed-width columns).
BATCH_BYTES = 64 * 2**20
READ_CHUNK = 1 << 20
NEWLINE = b"\n"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class TableLimits:
    max_rows: int
    max_columns: int
    # What the table may take in memory once decoded (Arrow's buffers), in bytes.
    max_decoded_bytes: int = 1024 * 2**20
    max_column_name_chars: int = 255


def clean_filename(name: str | None) -> str:
    """A display name from a client-sent file name: no directories, no control chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    return base[:200] or "upload"


def detect_format(path: Path, filename: str) -> TableFormat:
    with path.open("rb") as f:
        head = f.read(4)
    if head == PARQUET_MAGIC:
        return "parquet"
    if filename.lower().endswith((".parquet", ".pq")):
        raise _bad_file("The file is named .parquet but is not a Parquet file.")
    sample = _sample(path)
    if b"\x00" in sample:
        raise _bad_file(
            "The file is neither CSV text nor Parquet (it holds binary data).",
            hint="Upload a CSV (UTF-8 text) or a Parquet file.",
        )
    return "csv"


def read_table(path: Path, fmt: TableFormat, limits: TableLimits) -> pd.DataFrame:
    """Read a whole table, enforcing the limits, or raise a 422 ProblemError."""
    frame = _read_parquet(path, limits) if fmt == "parquet" else _read_csv(path, limits)
    if len(frame) == 0:
        raise _bad_file("The table has a header but no data rows.")
    if len(frame) > limits.max_rows:
        raise _over_limit(len(frame), limits.max_rows, "rows", "AUXSEL_MAX_ROWS")
    return frame


def _sample(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(SNIFF_BYTES)


def _read_csv(path: Path, limits: TableLimits) -> pd.DataFrame:
    sample = _sample(path)
    if sample.startswith(b"\xef\xbb\xbf"):
        sample = sample[3:]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the sample's end
            raise _bad_file(
                f"The file is not UTF-8 text (invalid byte at position {exc.start}).",
                hint="Save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet) and upload again.",
            ) from exc
        text = sample[: exc.start].decode("utf-8")
    if not text.strip():
        raise _bad_file("The file is empty.")
    header_line = _header_line(path, text)
    delimiter = _sniff_delimiter(text if "\n" in text else header_line[:SNIFF_BYTES])
    header = next(csv.reader([header_line], delimiter=delimiter))
    if len(header) > limits.max_columns:
        raise _over_limit(len(header), limits.max_columns, "columns", "AUXSEL_MAX_COLUMNS")
    _check_header(header, limits)
    _check_utf8(path)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True, quoted_strings_can_be_null=True
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _bad_file(_arrow_message(str(exc))) from exc
    # A CSV decodes to at most a few times its size (a 2-byte field "0," becomes 8
    # bytes); checked anyway, so the limit means the same for both formats.
    _check_decoded(table.nbytes, limits)
    _check_big_integers(path, table, delimiter)
    return _to_pandas(table)


def _check_utf8(path: Path) -> None:
    """The whole file must be UTF-8 (pyarrow reads a column with invalid bytes as binary
    instead of refusing it). Streamed in 1 MiB chunks: memory stays bounded."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, line = 0, 1
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = max(0, exc.start - (len(exc.object) - len(chunk)))
                where = line + chunk[:at].count(NEWLINE)
                raise _bad_file(
                    f"The file is not UTF-8 text (invalid byte at position {offset + at:,}, "
                    f"line {where:,}).",
                    hint="Save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet) and upload again.",
                ) from exc
            line += chunk.count(NEWLINE)
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _bad_file(
            "The file is not UTF-8 text (it ends inside a character).",
            hint="Save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet) and upload again.",
        ) from exc


INTEGER_PATTERN = r"^\s*[-+]?\d+\s*$"


def _check_big_integers(path: Path, table: pa.Table, delimiter: str) -> None:
    """pyarrow reads a column of integers that overflow 64 bits as floating point,
    silently rounding them; such a column is refused, naming it. Only a float column
    with a value beyond 2**63 is read again (as text) to tell 1e19 from 10000000000000000000."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_floating(column.type):
            continue
        biggest = pc.max(pc.abs(column)).as_py()
        if biggest is None or biggest < 2.0**63:
            continue
        text = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                include_columns=[name], column_types={name: pa.string()}
            ),
        ).column(0)
        integers = pc.filter(text, pc.match_substring_regex(text, INTEGER_PATTERN))
        long = pc.filter(
            integers, pc.greater_equal(pc.utf8_length(pc.utf8_trim_whitespace(integers)), 19)
        )
        for value in long.to_pylist():
            if not INT64_MIN <= int(value) <= INT64_MAX:
                shown = value.strip()
                raise field_problem(
                    422,
                    "Integer out of range",
                    f"Column {name!r} holds an integer beyond the 64-bit range "
                    f"({shown[:40]}{'...' if len(shown) > 40 else ''}); it would be rounded "
                    "to a floating-point number.",
                    f"Column {name!r}: write such values with an exponent (e.g. 1.2e20) if "
                    "approximate numbers are fine, or prefix them with a letter to keep "
                    "them as text identifiers.",
                    type_="integer-out-of-range",
                )


def _header_line(path: Path, sample: str) -> str:
    """The whole first line, even when it is longer than the sniffed sample (a very
    wide table), so its columns are counted exactly."""
    lines = sample.splitlines()
    if len(lines) > 1 or sample.endswith(("\n", "\r")):
        return lines[0]
    with path.open("rb") as f:
        raw = f.readline(MAX_HEADER_BYTES + 1)
    if len(raw) > MAX_HEADER_BYTES:
        raise _bad_file(
            f"The header line is longer than {MAX_HEADER_BYTES // 2**20} MiB.",
            hint="Upload a table with fewer or shorter column names.",
        )
    return raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").rstrip("\r\n")


def _read_parquet(path: Path, limits: TableLimits) -> pd.DataFrame:
    """Checked from the metadata before anything is decoded (counts, flat columns, the
    decoded size of fixed-width columns, the pages' uncompressed size), then read in
    batches, text columns as dictionaries whose decoded size is counted before they are
    expanded: a small file that decodes to gigabytes is refused within the limit."""
    try:
        meta = pq.read_metadata(path)
        if meta.num_columns > limits.max_columns:
            raise _over_limit(meta.num_columns, limits.max_columns, "columns", "AUXSEL_MAX_COLUMNS")
        if meta.num_rows > limits.max_rows:
            raise _over_limit(meta.num_rows, limits.max_rows, "rows", "AUXSEL_MAX_ROWS")
        schema = pq.read_schema(path)
        _check_header([str(n) for n in schema.names], limits)
        _check_flat(schema)
        row_width = sum(_fixed_width(field.type) for field in schema)
        _check_decoded(meta.num_rows * row_width, limits)
        _check_decoded(_uncompressed_size(meta), limits, what="its compressed pages expand")
        text = [f.name for f in schema if _is_binary_like(f.type)]
        parquet = pq.ParquetFile(path, read_dictionary=text)
        batch_rows = max(1024, min(65_536, BATCH_BYTES // max(1, row_width)))
        batches, decoded = [], 0
        for batch in parquet.iter_batches(batch_size=batch_rows, use_pandas_metadata=True):
            decoded += sum(_decoded_size(column) for column in batch.columns)
            _check_decoded(decoded, limits)
            batches.append(_expand(batch, schema))
        table = (
            pa.Table.from_batches(batches) if batches else schema.empty_table()
        ).replace_schema_metadata(schema.metadata)
        del batches
    except (pa.ArrowException, OSError) as exc:
        raise _bad_file(f"The Parquet file could not be read: {exc}") from exc
    return _to_pandas(table)


def _check_flat(schema: pa.Schema) -> None:
    nested = [f.name for f in schema if pa.types.is_nested(f.type)]
    if nested:
        shown = ", ".join(repr(n) for n in nested[:5]) + (", ..." if len(nested) > 5 else "")
        raise _bad_file(
            f"Column(s) {shown} hold nested values (lists, structs or maps), which cannot "
            "be features or labels.",
            hint="Flatten them into one column per value, or drop them, and upload again.",
        )


def _is_binary_like(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def _fixed_width(kind: pa.DataType) -> int:
    """Decoded bytes per row of a column (offsets only, for text; at least 1)."""
    if pa.types.is_dictionary(kind):
        return _fixed_width(kind.index_type)
    try:
        return max(1, int(kind.bit_width) // 8)
    except ValueError:  # variable width: its offsets
        return 8 if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind) else 4


def _uncompressed_size(meta: pq.FileMetaData) -> int:
    return sum(
        meta.row_group(g).column(c).total_uncompressed_size
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    )


def _decoded_size(column: pa.Array) -> int:
    """Bytes the column takes once expanded (a dictionary's values repeated per row)."""
    if isinstance(column, pa.DictionaryArray) and _is_binary_like(column.dictionary.type):
        lengths = pc.binary_length(column.dictionary)
        total = pc.sum(pc.take(lengths, column.indices)).as_py() or 0
        return int(total) + 4 * len(column)
    return int(column.nbytes)


def _expand(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch with text columns read as dictionaries turned back into plain columns."""
    columns = [
        column.dictionary_decode()
        if isinstance(column, pa.DictionaryArray) and not pa.types.is_dictionary(field.type)
        else column
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema.remove_metadata())


def _check_decoded(size: int, limits: TableLimits, what: str = "it decodes") -> None:
    if size > limits.max_decoded_bytes:
        limit_mb = limits.max_decoded_bytes / 2**20
        raise field_problem(
            422,
            "Table too large",
            f"The table is too large once decoded: {what} to more than {size / 2**20:,.0f} "
            f"MiB in memory; the limit is {limit_mb:,.0f} MiB. Nothing was stored.",
            "Raise AUXSEL_MAX_DECODED_MB, or upload fewer rows or columns.",
            type_="limit-exceeded",
        )


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    frame: pd.DataFrame = table.to_pandas()
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _sniff_delimiter(text: str) -> str:
    lines = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(lines, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _check_header(header: list[str], limits: TableLimits) -> None:
    names = [h.strip() for h in header]
    if any(not n for n in names):
        position = next(i for i, n in enumerate(names) if not n) + 1
        raise _bad_file(f"Column {position} has an empty name.", hint="Name every column.")
    for position, name in enumerate(names, start=1):
        if "\x00" in name:
            raise _bad_file(
                f"Column {position}'s name holds a NUL character.",
                hint="Remove control characters from the column names.",
            )
        if len(name) > limits.max_column_name_chars:
            raise field_problem(
                422,
                "Column name too long",
                f"Column {position}'s name has {len(name):,} characters; the limit is "
                f"{limits.max_column_name_chars:,}.",
                "Shorten the column names, or raise AUXSEL_MAX_COLUMN_NAME_CHARS.",
                type_="limit-exceeded",
            )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _bad_file(
                f"Column name {name!r} appears more than once.",
                hint="Give every column a distinct name.",
            )
        seen.add(name)


def _arrow_message(message: str) -> str:
    """pyarrow's CSV errors, in words a user can act on."""
    first = message.splitlines()[0]
    if "invalid UTF8" in message or "UTF8" in first:
        return "The file is not valid UTF-8 text; save it as UTF-8 and upload again."
    match = re.search(r"Expected (\d+) columns, got (\d+)", message)
    if match:
        row = re.search(r"Row #(\d+)", message)
        where = f" (row {row.group(1)})" if row else ""
        return (
            f"A row has {match.group(2)} fields but the header has {match.group(1)}{where}; "
            "every row needs the same number of fields."
        )
    return f"The CSV file could not be parsed: {first}"


def _bad_file(message: str, hint: str | None = None) -> ProblemError:
    detail = message if hint is None else f"{message} {hint}"
    return field_problem(422, "Unreadable table", detail, hint or message, type_="unreadable-table")


def _over_limit(count: int, limit: int, noun: str, setting: str) -> ProblemError:
    title = "Table too large" if noun == "rows" else "Too many columns"
    detail = f"The table has {count:,} {noun}; the limit is {limit:,}."
    fix = f"Raise {setting} or upload fewer {noun}."
    return field_problem(422, title, detail, fix, type_="limit-exceeded")
