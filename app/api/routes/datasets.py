"""/api/v1/datasets: upload (multipart, streamed), list, read, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.api.deps import OwnerDep, SessionDep, SettingsDep, StorageDep, limit_uploads
from app.api.pagination import Page, clamp_page_size, decode_cursor, page_body
from app.api.schemas import DatasetList, DatasetOut, DatasetSummary, RolesIn
from app.data.storage import StoredFile, upload_too_large
from app.db.models import Dataset
from app.db.repositories import datasets as repo
from app.db.repositories.datasets import DatasetSummary as SummaryRow
from app.db.session import write_transaction
from app.errors import ProblemError, field_problem
from app.security.guard import upload_body_limit
from app.services import datasets as service

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])
PART_HEADER_BYTES = 8 * 1024  # the headers of one form part

UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV (UTF-8) or Parquet file.",
                        },
                        "name": {"type": "string", "description": "Display name."},
                    },
                }
            }
        },
    }
}


def _summary(row: SummaryRow | Dataset, columns: int) -> DatasetSummary:
    return DatasetSummary(
        id=row.id,
        name=row.name,
        filename=row.filename,
        format=row.format,
        rows=row.rows,
        columns=columns,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        created_at=row.created_at,
    )


def summary_view(row: SummaryRow) -> DatasetSummary:
    return _summary(row, row.columns)


def dataset_view(dataset: Dataset) -> DatasetOut:
    """The summary, then the column profile as stored (checked against ColumnProfile)
    and the columns' roles."""
    summary = _summary(dataset, len(dataset.profile)).model_dump()
    return DatasetOut.model_validate(
        {**summary, "profile": dataset.profile, "roles": service.roles(dataset)}
    )


FIELD_BYTES = 4096  # a form field other than `file`
FORM_FIELDS = ("file", "name")


def wrong_file_field(received: str) -> ProblemError:
    """A file sent in a form field other than `file` (a client's typo, e.g. `data`)."""
    return ProblemError(
        422,
        "Invalid upload",
        f"The table must be sent in the form field `file`; this upload sent a file in "
        f"the field {received!r}.",
        type_="wrong-form-field",
        errors=[{"field": "file", "message": f"Send the table as `file` (received {received!r})."}],
        extensions={"expected_field": "file", "received_field": received},
    )


def long_field(received: str) -> ProblemError:
    if received in FORM_FIELDS:
        detail = f"The form field {received!r} is longer than {FIELD_BYTES} bytes."
        message = f"At most {FIELD_BYTES} bytes."
    else:
        detail = (
            f"The form has an unknown field {received!r} longer than {FIELD_BYTES} bytes; "
            "an upload takes the table in `file` (as a file) and an optional `name`."
        )
        message = "Unknown field: send the table as `file` and at most a `name`."
    return ProblemError(
        422,
        "Invalid upload",
        detail,
        type_="validation-error",
        errors=[{"field": received or "form", "message": message}],
        extensions={"expected_field": "file", "received_field": received},
    )


class _MultipartUpload:
    """Streams the single file part of a multipart body into storage as it arrives,
    so an oversized upload is refused before it is buffered anywhere."""

    def __init__(self, request: Request, max_parts: int) -> None:
        content_type, params = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in params:
            raise field_problem(
                415,
                "Unsupported media type",
                "Upload the file as multipart/form-data with a `file` part.",
                "Send multipart/form-data.",
                type_="unsupported-media-type",
            )
        self.request = request
        self.boundary = params[b"boundary"]
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self._part_name: str | None = None
        self._part_file = False
        self._header_field = b""
        self._headers: dict[bytes, bytes] = {}
        self._pending: list[bytes] = []
        self._value = b""
        self.saw_file = False
        self.max_parts = max_parts
        self._parts = 0
        self._header_bytes = 0

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > PART_HEADER_BYTES:
            raise ProblemError(
                413,
                "Form part headers too large",
                f"The headers of a form part exceed {PART_HEADER_BYTES // 1024} KiB.",
                type_="body-too-large",
                errors=[{"field": "form", "message": "Send short part headers."}],
            )

    def _on_part_begin(self) -> None:
        self._parts += 1
        self._header_bytes = 0
        if self._parts > self.max_parts:
            raise ProblemError(
                413,
                "Too many form parts",
                f"The form has more than {self.max_parts} parts (AUXSEL_MAX_FORM_PARTS); "
                "an upload takes a `file` part and an optional `name`.",
                type_="too-many-parts",
                errors=[{"field": "form", "message": "Send only `file` and `name`."}],
            )

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._headers[self._header_field.lower()] = (
            self._headers.get(self._header_field.lower(), b"") + data[start:end]
        )

    def _on_header_end(self) -> None:
        self._header_field = b""

    def _on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._part_name = params.get(b"name", b"").decode("utf-8", "replace")
        # The `file` part is the table whether or not it names a file (curl's
        # `-F file=<t.csv` sends none); a file under another name is a wrong field name.
        self._part_file = self._part_name == "file"
        if b"filename" in params and not self._part_file:
            raise wrong_file_field(self._part_name)
        if self._part_file:
            if self.saw_file:
                raise ProblemError(
                    422,
                    "Invalid upload",
                    "Send exactly one `file` part.",
                    errors=[{"field": "file", "message": "One file per upload."}],
                )
            self.saw_file = True
            filename = params.get(b"filename")
            self.filename = filename.decode("utf-8", "replace") if filename else None
        self._headers = {}
        self._value = b""

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_file:
            self._pending.append(data[start:end])
        else:
            self._value += data[start:end]
            if len(self._value) > FIELD_BYTES:
                raise long_field(self._part_name or "")

    def _on_part_end(self) -> None:
        if not self._part_file and self._part_name:
            self.fields[self._part_name] = self._value.decode("utf-8", "replace")

    async def file_chunks(self) -> AsyncIterator[bytes]:
        parser = MultipartParser(
            self.boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )
        try:
            async for chunk in self.request.stream():
                parser.write(chunk)
                while self._pending:
                    yield self._pending.pop(0)
            parser.finalize()
        except FormParserError as exc:
            raise field_problem(
                400,
                "Malformed upload",
                f"The multipart/form-data body could not be parsed: {exc}",
                "Send a well-formed multipart body.",
                type_="malformed-multipart",
            ) from exc
        while self._pending:
            yield self._pending.pop(0)


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra=UPLOAD_DOC,
    dependencies=[Depends(limit_uploads)],
    responses={
        200: {
            "model": DatasetOut,
            "description": "The same bytes (sha256) were already uploaded by this owner: "
            "the existing data set, nothing new is stored",
        },
        201: {"description": "A new data set"},
        400: {"description": "Malformed multipart body"},
        413: {"description": "Upload too large"},
        415: {"description": "Not multipart"},
        422: {"description": "Unreadable table"},
        429: {"description": "Rate limit (AUXSEL_RATE_UPLOAD_PER_MIN); see Retry-After"},
        500: {"description": "Storage unavailable"},
        507: {"description": "Storage full"},
    },
)
async def upload_dataset(
    request: Request,
    response: Response,
    settings: SettingsDep,
    storage: StorageDep,
    owner: OwnerDep,
) -> DatasetOut:
    """Upload a CSV or Parquet table; returns its id, row count and column profile.

    Uploading the same bytes again (same sha256, same owner) answers 200 with the data
    set already stored instead of 201 with a copy."""
    # Every byte of the body, form fields and framing included, counts against
    # upload_body_limit (app/security/guard.py); the file part alone against the upload limit.
    declared = request.headers.get("content-length")
    limit = int(settings.max_upload_mb * 2**20)
    if declared and declared.isdigit() and int(declared) > upload_body_limit(settings):
        raise upload_too_large(limit)
    upload = _MultipartUpload(request, settings.max_form_parts)
    stored: StoredFile = await service.store_upload(storage, upload.file_chunks(), settings)
    sessions = request.app.state.sessions

    def finish() -> tuple[DatasetOut, bool]:
        """(the data set, whether it is new). Whatever refuses the upload (or fails) past
        this point, the stored file goes with it: a rejected upload leaves neither a row
        nor a file (a file another data set holds stays)."""
        try:
            if not upload.saw_file:
                received = ", ".join(repr(f) for f in upload.fields) or "none"
                raise ProblemError(
                    422,
                    "Invalid upload",
                    f"The form has no `file` part (fields received: {received}).",
                    type_="validation-error",
                    errors=[{"field": "file", "message": "Attach the table as `file`."}],
                )
            name = service.check_name(upload.fields.get("name"))
            with sessions() as session:
                if (same := service.existing_copy(session, owner, stored)) is not None:
                    return dataset_view(same), False
            # Parse outside any transaction: a large file must not hold the write lock.
            parsed = service.parse_upload(storage, stored, upload.filename, settings)
            with write_transaction(sessions) as session:
                # Again under the write lock: a concurrent upload of the same bytes.
                repo.lock_content(session, owner, stored.sha256)
                if (same := service.existing_copy(session, owner, stored)) is not None:
                    return dataset_view(same), False
                dataset = service.create(session, owner, parsed, name)
                return dataset_view(dataset), True
        except BaseException:
            service.discard_quietly(sessions, storage, stored)
            raise

    body, new = await run_in_threadpool(finish)
    if not new:
        response.status_code = 200
    response.headers["Location"] = str(request.url_for("get_dataset", dataset_id=body.id))
    return body


@router.get("", response_model=DatasetList)
def list_datasets(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
    page_token: str | None = None,
) -> Page[DatasetSummary]:
    """Data sets, newest first, with cursor pagination. Each item is a summary (its
    column count, not its column profile): GET /api/v1/datasets/{id} has the profile."""
    size = clamp_page_size(page_size, settings.page_size_default, settings.page_size_max)
    rows = repo.page_summaries(session, owner, decode_cursor(page_token), size)
    return page_body(request, response, rows, size, summary_view)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, owner: OwnerDep) -> DatasetOut:
    return dataset_view(service.require(session, owner, dataset_id))


@router.patch(
    "/{dataset_id}/columns",
    response_model=DatasetOut,
    responses={
        404: {"description": "No such data set"},
        422: {"description": "Unknown column or role"},
    },
)
def set_column_roles(
    dataset_id: str, body: RolesIn, session: SessionDep, owner: OwnerDep
) -> DatasetOut:
    """Set the roles of some columns (feature, label, id, ignore); the others keep
    theirs. Later jobs' default inputs are the feature-role columns; jobs already
    submitted keep the inputs they were given."""
    return dataset_view(service.set_roles(session, owner, dataset_id, body.roles))


@router.delete("/{dataset_id}", status_code=204, responses={409: {"description": "In use"}})
def delete_dataset(
    dataset_id: str, session: SessionDep, storage: StorageDep, owner: OwnerDep
) -> Response:
    """Delete a data set and its file (unless a queued or running job reads it)."""
    service.delete(session, storage, owner, dataset_id)
    return Response(status_code=204)
