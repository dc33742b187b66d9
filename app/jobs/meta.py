"""A job's metadata: what its owner says about it (tags and a note), kept apart from its
spec (what trains): the limits on them, the PATCH body (JobMetaIn) and the submission
body that carries them beside the spec (JobSubmission)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.jobs.spec import JobSpec

MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_NOTE_LENGTH = 4000

# A tag: 1-40 characters of letters, digits, space and - _ . : / + (no commas, quotes
# or control characters), trimmed.
Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_TAG_LENGTH,
        pattern=r"^[\w][\w .:/+-]*$",
    ),
]


TAGS_DESCRIPTION = (
    f"At most {MAX_TAGS} tags of up to {MAX_TAG_LENGTH} characters (letters, digits, space, "
    "- _ . : / +); duplicates are dropped."
)


class JobMetaIn(BaseModel):
    """The job's metadata (PATCH /api/v1/jobs/{id}): what its owner says about it, kept
    apart from its spec (what trains). A field left out is left as it is."""

    model_config = ConfigDict(extra="forbid")

    tags: list[Tag] | None = Field(
        default=None,
        max_length=MAX_TAGS,
        description=f"{TAGS_DESCRIPTION} [] clears them.",
    )
    note: str | None = Field(
        default=None,
        max_length=MAX_NOTE_LENGTH,
        description=f'A free-text note, up to {MAX_NOTE_LENGTH} characters; "" clears it.',
    )

    @field_validator("note")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return _no_nul_note(value)


def _no_nul_note(value: str | None) -> str | None:
    """No NUL in a note (PostgreSQL cannot store one in text)."""
    if value is not None and "\x00" in value:
        raise ValueError("Holds a NUL character; remove control characters.")
    return value


class JobSubmission(JobSpec):
    """POST /api/v1/jobs's body: the job spec, and optionally the job's tags and note.
    Those are its metadata, stored beside the spec and not in it: the spec is what
    trains (and what a clone copies); tags and note can change later (PATCH)."""

    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description=TAGS_DESCRIPTION)
    note: str = Field(
        default="", max_length=MAX_NOTE_LENGTH, description=f"Up to {MAX_NOTE_LENGTH} characters."
    )

    @field_validator("note")
    @classmethod
    def _no_nul_in_note(cls, value: str) -> str:
        return _no_nul_note(value) or ""


META_FIELDS = frozenset({"tags", "note"})
"""JobSubmission's fields that are not the spec."""
