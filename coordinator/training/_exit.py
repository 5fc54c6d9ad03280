"""Exit codes of ``accord train``, ``accord jobs`` and ``accord models`` (210-219).

The coordinator's own codes (200 federation file, 201 TLS, 202 spec, 203 no node
answered) apply too.
"""

from __future__ import annotations


class TrainingExitCode:
    """Exit codes of the training commands."""

    JOB_FAILED = 210
    JOB_NOT_FOUND = 211
    STORE_UNAVAILABLE = 212
    INTERRUPTED = 213


TRAINING_EXIT_CODE_HELP: dict[int, str] = {
    TrainingExitCode.JOB_FAILED: "The training job stopped before its last round; `accord jobs show ID` says why.",
    TrainingExitCode.JOB_NOT_FOUND: "No job (or no model) with that id in the job store.",
    TrainingExitCode.STORE_UNAVAILABLE: "The job store cannot be opened (check --store / ACCORD_JOB_STORE).",
    TrainingExitCode.INTERRUPTED: "Interrupted; the job resumes from its last completed round with --resume ID.",
}
