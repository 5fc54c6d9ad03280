"""A training message's job context, read from its proto and checked field by field."""

from __future__ import annotations

import math
from dataclasses import dataclass

import secagg
from accord.v1 import training_service_pb2 as pb
from node._errors import InvalidQuery
from node._secure_sessions import SessionRequest, request_from_proto

#: Longest job id, dataset id, app name and column list accepted.
_MAX_ID = 128
_MAX_COLUMNS = 1024
#: Largest noise multiplier and clipping norm accepted (beyond: a mistake).
_MAX_NOISE = 1e6
_MAX_CLIP = 1e9


@dataclass(frozen=True)
class Encoding:
    """Fixed-point encoding of updates under secure aggregation."""

    scale: float
    bound: float
    max_weight: int


@dataclass(frozen=True)
class JobContext:
    """What a training message asks, as the node decides on it."""

    job_id: str
    app: str
    app_digest: str
    dataset: str
    features: tuple[str, ...]
    label: str
    purpose: str
    legal_basis: str
    justification: str
    on_behalf_of: str
    round: int
    participants: int
    noise_multiplier: float
    clipping_norm: float
    secure_aggregation: SessionRequest | None
    encoding: Encoding | None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the message reads: the features, then the label."""
        return (*self.features, self.label)


def _number(field: str, value: float, upper: float) -> float:
    if not math.isfinite(value) or not 0 <= value <= upper:
        raise InvalidQuery(field, f"expected a number from 0 to {upper:g}")
    return value


def _identifier(field: str, value: str, *, required: bool = True) -> str:
    if required and not value:
        raise InvalidQuery(field, "required")
    if len(value) > _MAX_ID:
        raise InvalidQuery(field, f"at most {_MAX_ID} characters")
    return value


def job_from_proto(job: pb.TrainingJob) -> JobContext:
    """Read and check a ``TrainingJob``.

    Raises
    ------
    InvalidQuery
        Naming the first field that is missing or malformed.
    """
    _identifier("job.job_id", job.job_id)
    _identifier("job.app.name", job.app.name)
    if not job.app.digest.startswith("sha256:") or len(job.app.digest) != 71:
        raise InvalidQuery("job.app.digest", 'expected "sha256:<64 hex digits>"')
    _identifier("job.dataset_id", job.dataset_id)
    if not job.features:
        raise InvalidQuery("job.features", "name at least one feature column")
    if len(job.features) > _MAX_COLUMNS:
        raise InvalidQuery("job.features", f"at most {_MAX_COLUMNS} columns")
    for name in (*job.features, job.label):
        _identifier("job.features", name)
    _identifier("job.label", job.label)
    if job.round < 1:
        raise InvalidQuery("job.round", "rounds are numbered from 1")
    request: SessionRequest | None = None
    encoding: Encoding | None = None
    if job.HasField("secure_aggregation"):
        request = request_from_proto(job.secure_aggregation)
        request.check()
        enc = job.encoding
        if not (
            math.isfinite(enc.scale)
            and enc.scale > 0
            and math.isfinite(enc.bound)
            and enc.bound > 0
            and enc.max_weight >= 1
        ):
            raise InvalidQuery(
                "job.encoding", "scale and bound must be positive, max_weight >= 1"
            )
        units = round(enc.bound * enc.scale)
        try:
            if units < 1:
                raise ValueError("bound * scale rounds to 0")
            secagg.check_bit_budget(units.bit_length(), request.participants)
        except (ValueError, secagg.Overflow) as exc:
            raise InvalidQuery("job.encoding", str(exc)) from None
        encoding = Encoding(enc.scale, enc.bound, enc.max_weight)
    return JobContext(
        job_id=job.job_id,
        app=job.app.name,
        app_digest=job.app.digest,
        dataset=job.dataset_id,
        features=tuple(job.features),
        label=job.label,
        purpose=job.access.purpose[:256],
        legal_basis=job.access.legal_basis[:256],
        justification=job.access.justification[:1024],
        on_behalf_of=job.access.on_behalf_of[:256],
        round=job.round,
        participants=job.participants,
        noise_multiplier=_number(
            "job.privacy.noise_multiplier", job.privacy.noise_multiplier, _MAX_NOISE
        ),
        clipping_norm=_number(
            "job.privacy.clipping_norm", job.privacy.clipping_norm, _MAX_CLIP
        ),
        secure_aggregation=request,
        encoding=encoding,
    )
