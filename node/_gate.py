"""The node's enforcement point: decide, reserve budget, make the decision durable.

Every request passes here before any data is touched, in this order: the pure policy
evaluation, the atomic budget reservation, then the decision record, committed to the
tamper-evident log. Denials and failures are recorded too; nothing here reads data,
and no record ever holds a data value.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import grpc

import pki
import policies
from node._errors import (
    BudgetExceeded,
    BudgetUnavailable,
    DecisionNotLogged,
    NodeError,
    PolicyDenied,
    Unauthenticated,
)
from policies import auditlog, ledger

Clock = Callable[[], datetime]
#: A last check of an allowed decision; raises a ``NodeError`` to refuse.
Check = Callable[[policies.Decision], None]

_log = logging.getLogger("accord.node")

#: How long a request waits for its decision to become durable before failing.
APPEND_TIMEOUT = 10.0


class PolicyHolder:
    """The policy in force; swapped atomically when the node reloads it."""

    def __init__(self, loaded: policies.LoadedPolicy) -> None:
        self._loaded = loaded
        self._lock = threading.Lock()

    @property
    def current(self) -> policies.LoadedPolicy:
        """The policy in force now."""
        with self._lock:
            return self._loaded

    def replace(self, loaded: policies.LoadedPolicy) -> None:
        """Put ``loaded`` in force for every later request."""
        with self._lock:
            self._loaded = loaded


@dataclass(frozen=True)
class Ticket:
    """What one request is about, for its decision record."""

    method: str
    operation: str
    requester: policies.Requester
    query_id: str
    request_hash: str
    dataset: str = ""
    columns: tuple[str, ...] = ()
    purpose: str = ""
    legal_basis: str = ""
    justification: str = ""
    on_behalf_of: str = ""


@dataclass(frozen=True)
class Admission:
    """An allowed request: its decision, reservation and durable record."""

    ticket: Ticket
    decision: policies.Decision
    balances: tuple[ledger.Balance, ...]
    record: auditlog.DecisionRecord
    reservation: str

    @property
    def remaining_rho(self) -> float | None:
        """The least remaining rho over the budgets charged (None: no budget)."""
        return min((b.remaining_rho for b in self.balances), default=None)


#: Who calls an ``--insecure`` node: nobody can be authenticated there.
INSECURE_REQUESTER = policies.Requester(uri="insecure:anonymous", agency="", role="")


def requester_of(
    context: grpc.ServicerContext, node: pki.Identity
) -> policies.Requester:
    """Return the caller, from its mTLS certificate (never from request fields).

    Raises
    ------
    Unauthenticated
        If the certificate names another federation.
    """
    identity = pki.peer_identity(context.auth_context())
    if identity is None:
        # Only reachable on an --insecure server: TLS requires a certificate.
        return INSECURE_REQUESTER
    if identity.federation != node.federation:
        raise Unauthenticated(
            f"certificate of federation {identity.federation!r}; this node belongs "
            f"to {node.federation!r}"
        )
    return policies.Requester(
        uri=identity.uri, agency=identity.agency, role=identity.role
    )


def request_hash(payload: bytes) -> str:
    """SHA-256 (hex) of a request's deterministic serialisation."""
    return hashlib.sha256(payload).hexdigest()


class Gate:
    """Decides requests under the policy in force, charges budgets, logs decisions."""

    def __init__(
        self,
        *,
        policy: PolicyHolder,
        budgets: ledger.BudgetLedger,
        log: auditlog.DecisionLog,
        clock: Clock,
        operator: policies.Requester,
    ) -> None:
        self.operator = operator
        self.policy = policy
        self.budgets = budgets
        self.log = log
        self._clock = clock

    def _append(
        self,
        ticket: Ticket,
        *,
        decision: str,
        reason: str,
        digest: str,
        rules: Sequence[str] = (),
        charged: float = 0.0,
        remaining: float | None = None,
    ) -> auditlog.DecisionRecord:
        recipients = [ticket.requester.uri]
        if ticket.on_behalf_of:
            recipients.append(ticket.on_behalf_of)
        fields: auditlog.DecisionFields = {
            "time": self._clock(),
            "operation": ticket.operation,
            "requester": ticket.requester.uri,
            "on_behalf_of": ticket.on_behalf_of,
            "purpose": ticket.purpose,
            "legal_basis": ticket.legal_basis,
            "justification": ticket.justification,
            "dataset": ticket.dataset,
            "columns": list(ticket.columns),
            "request_hash": ticket.request_hash,
            "policy_digest": digest,
            "decision": decision,
            "matched_rules": list(rules),
            "reason": reason,
            "privacy_charged": charged,
            "privacy_remaining": remaining,
            "recipients": recipients if decision == "allow" else [],
            "query_id": ticket.query_id,
            "method": ticket.method,
        }
        try:
            return self.log.append(fields, timeout=APPEND_TIMEOUT)
        except auditlog.AuditLogError as exc:
            _log.error(
                "decision log unavailable",
                extra={"fields": {"query_id": ticket.query_id, "error": str(exc)}},
            )
            raise DecisionNotLogged(
                "the node could not record its decision, so it does not answer; "
                "retry later"
            ) from None

    def policy_change(self, digest: str, *, refused: bool, reason: str) -> None:
        """Record a policy reload (an alteration by the node's operator).

        A failure to record is logged operationally; the reload itself stands.
        """
        ticket = Ticket(
            method="ReloadPolicy",
            operation="alteration",
            requester=self.operator,
            query_id="",
            request_hash=digest,
        )
        try:
            self._append(
                ticket,
                decision="deny" if refused else "allow",
                reason=reason,
                digest=digest,
            )
        except DecisionNotLogged:
            pass

    def refuse(self, ticket: Ticket, reason: str) -> None:
        """Record the refusal of a malformed request (nothing was decided or spent)."""
        self._append(
            ticket, decision="deny", reason=reason, digest=self.policy.current.digest
        )

    def note(self, ticket: Ticket) -> auditlog.DecisionRecord:
        """Record an allowed request that reads only metadata (no policy rule needed)."""
        return self._append(
            ticket,
            decision="allow",
            reason="metadata and own budgets are open to every federation member",
            digest=self.policy.current.digest,
        )

    def assess(
        self,
        ticket: Ticket,
        request: policies.AccessRequest,
        check: Check | None = None,
    ) -> tuple[policies.Decision, tuple[ledger.Balance, ...]]:
        """Decide ``request`` without spending anything (a dry run); record it.

        Returns the decision and the current balances of the budgets it would charge.
        """
        decision = self._decide(ticket, request, check, record_denial=False)
        balances = self.balances(decision.charges) if decision.allowed else ()
        self._append(
            ticket,
            decision="allow" if decision.allowed else "deny",
            reason=f"dry run: {decision.reason}",
            digest=decision.policy_digest,
            rules=decision.matched_rules,
        )
        return decision, balances

    def _decide(
        self,
        ticket: Ticket,
        request: policies.AccessRequest,
        check: Check | None,
        *,
        record_denial: bool = True,
    ) -> policies.Decision:
        """Evaluate the policy, then ``check`` an allowed decision; log denials."""
        loaded = self.policy.current
        decision = policies.evaluate(
            loaded.policy, request, digest=loaded.digest, now=self._clock()
        )
        if decision.allowed and check is not None:
            try:
                check(decision)
            except NodeError as exc:
                if record_denial:
                    self._append(
                        ticket,
                        decision="deny",
                        reason=exc.message,
                        digest=loaded.digest,
                        rules=decision.matched_rules,
                    )
                raise
        if not decision.allowed and record_denial:
            self._append(
                ticket,
                decision="deny",
                reason=decision.reason,
                digest=loaded.digest,
                rules=decision.matched_rules,
            )
        return decision

    def admit(
        self,
        ticket: Ticket,
        request: policies.AccessRequest,
        check: Check | None = None,
    ) -> Admission:
        """Decide, reserve and record ``request``; return the admission.

        ``check`` may still refuse an allowed decision (by raising a ``NodeError``)
        before anything is reserved, e.g. when the policy's obligations cannot be met.

        Raises
        ------
        PolicyDenied
            The policy does not allow it (recorded; nothing spent).
        BudgetExceeded
            A budget does not cover it (recorded; nothing spent).
        BudgetUnavailable
            The budget ledger failed (recorded as an error; nothing reserved).
        DecisionNotLogged
            The decision could not be made durable (any reservation is released).
        """
        loaded = self.policy.current
        decision = self._decide(ticket, request, check)
        _log.info(
            "request %s",
            "allowed" if decision.allowed else "denied",
            extra={
                "fields": {
                    "query_id": ticket.query_id,
                    "method": ticket.method,
                    "requester": ticket.requester.uri,
                    "dataset": ticket.dataset,
                    "purpose": ticket.purpose,
                    "rules": ",".join(decision.matched_rules),
                    "policy_digest": loaded.digest[:16],
                }
            },
        )
        rule_meta = {
            "policy": decision.policy_uid,
            "rule": ",".join(decision.matched_rules) or "default-deny",
            "revision": decision.policy_digest,
        }
        if not decision.allowed:
            raise PolicyDenied(decision.reason, metadata=rule_meta)
        reservation = ticket.query_id or uuid.uuid4().hex
        reservation = f"{reservation}:{uuid.uuid4().hex[:8]}"
        try:
            balances = self.budgets.reserve(
                reservation, decision.charges, now=self._clock()
            )
        except ledger.BudgetExhausted as exc:
            self._append(
                ticket,
                decision="deny",
                reason=f"privacy budget {exc.budget_id} does not cover the request",
                digest=loaded.digest,
                rules=(exc.budget_id,),
            )
            raise BudgetExceeded(
                f"privacy budget {exc.budget_id} of {loaded.policy.policy.agency} "
                f"does not cover this request ({exc.cost_rho:.6g} rho asked, "
                f"{exc.remaining_rho:.6g} left)",
                metadata={**rule_meta, "rule": exc.budget_id, "budget": exc.budget_id},
            ) from None
        except ledger.LedgerError as exc:
            _log.error(
                "budget ledger unavailable",
                extra={"fields": {"query_id": ticket.query_id, "error": str(exc)}},
            )
            self._append(
                ticket,
                decision="error",
                reason="the budget ledger is unavailable; the request was not answered",
                digest=loaded.digest,
                rules=decision.matched_rules,
            )
            raise BudgetUnavailable(
                "the node could not reserve privacy budget, so it does not answer; "
                "retry later"
            ) from None
        for balance in balances:
            if balance.past_threshold:
                _log.warning(
                    "privacy budget past its alert threshold",
                    extra={
                        "fields": {
                            "budget": balance.charge.budget_id,
                            "account": balance.charge.account,
                            "notify": (decision.obligations.notify or "")
                            if decision.obligations
                            else "",
                        }
                    },
                )
        remaining = min((b.remaining_rho for b in balances), default=None)
        try:
            record = self._append(
                ticket,
                decision="allow",
                reason=decision.reason,
                digest=loaded.digest,
                rules=decision.matched_rules,
                charged=decision.rho,
                remaining=remaining,
            )
        except DecisionNotLogged:
            self._give_back(reservation, ticket)
            raise
        return Admission(ticket, decision, tuple(balances), record, reservation)

    def balances(
        self, charges: Sequence[policies.BudgetCharge]
    ) -> tuple[ledger.Balance, ...]:
        """Return the current balances of ``charges``' budgets.

        Raises
        ------
        BudgetUnavailable
            If the budget ledger cannot be read.
        """
        try:
            return tuple(self.budgets.balances(charges))
        except ledger.LedgerError as exc:
            _log.error(
                "budget ledger unavailable", extra={"fields": {"error": str(exc)}}
            )
            raise BudgetUnavailable(
                "the node could not read its privacy budgets; retry later"
            ) from None

    def _give_back(self, reservation: str, ticket: Ticket) -> None:
        """Release a reservation; if the ledger fails, the charge stays (safe side)."""
        try:
            self.budgets.release(reservation)
        except ledger.LedgerError as exc:
            _log.error(
                "budget ledger could not give a reservation back; it stays spent",
                extra={"fields": {"query_id": ticket.query_id, "error": str(exc)}},
            )

    def failed(self, admission: Admission, reason: str) -> None:
        """Record that an admitted request failed; give its budget back."""
        self._give_back(admission.reservation, admission.ticket)
        self._append(
            admission.ticket,
            decision="error",
            reason=reason,
            digest=admission.decision.policy_digest,
            rules=admission.decision.matched_rules,
        )
