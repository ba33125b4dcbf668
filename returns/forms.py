"""Admin forms for returns: decisions (reject, in transit) and the two scanner pages.

The forms find returns and lines and collect typed or scanned input; every write goes
through ``returns.services``, whose ``DomainError`` the views show as a message. The scanner
forms are built for a barcode scanner that types a code and presses Enter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, F, OuterRef, Q, QuerySet

from inventory.models import Warehouse

from . import services
from .models import Inspection, ReturnLine, ReturnRequest, ReturnStatus

R = ReturnStatus
RECEIVABLE_STATUSES = services.RECEIVABLE_STATUSES
NON_SELLABLE_DISPOSITIONS = [
    (value, label)
    for value, label in Inspection.Disposition.choices
    if value != Inspection.Disposition.RESTOCK
]


# -- decisions --------------------------------------------------------------------------------


class RejectForm(forms.Form):
    title = "Reject return"
    permission = "returns.decide_return"

    reason = forms.CharField(
        max_length=300,
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
        help_text="The buyer sees this reason.",
    )

    def execute(self, *, return_request: ReturnRequest, actor: AbstractBaseUser) -> ReturnRequest:
        return services.return_request_reject(
            return_request=return_request, reason=self.cleaned_data["reason"], actor=actor
        )


class InTransitForm(forms.Form):
    title = "Mark in transit"

    tracking_number = forms.CharField(
        max_length=60,
        required=False,
        widget=forms.TextInput(attrs={"autofocus": True}),
        help_text="The return parcel's tracking number, if the buyer gave one.",
    )

    def execute(self, *, return_request: ReturnRequest, actor: AbstractBaseUser) -> ReturnRequest:
        return services.return_mark_in_transit(
            return_request=return_request,
            tracking_number=self.cleaned_data["tracking_number"].strip(),
            actor=actor,
        )


class StopWaitingForm(forms.Form):
    title = "Stop waiting for the rest"
    permission = "returns.receive_return"

    reason = forms.CharField(
        max_length=300,
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
        help_text="Why the units not received yet will not come back (they are not refunded).",
    )

    def execute(self, *, return_request: ReturnRequest, actor: AbstractBaseUser) -> ReturnRequest:
        return services.return_receiving_close(
            return_request=return_request, reason=self.cleaned_data["reason"], actor=actor
        )


class RefundTermsForm(forms.Form):
    """What the refunds of a return give back: shipping or not, and an amount per line
    (at most what was paid for its units). On approval, also whether to refund at once."""

    title = "Refund terms"
    permission = "returns.decide_return"

    refund_shipping = forms.BooleanField(
        required=False, help_text="Give the order's shipping back with the next refund."
    )

    def __init__(self, data=None, *, return_request: ReturnRequest, approving: bool = False):
        self.return_request = return_request
        self.approving = approving
        self.lines = list(return_request.lines.select_related("sku", "order_line").order_by("id"))
        initial = {"refund_shipping": return_request.refund_shipping}
        super().__init__(data, initial=initial)
        if approving:
            self.title = "Approve return"
            self.fields["returnless"] = forms.BooleanField(
                required=False, label="Refund without a return", help_text="Refunds at once."
            )
        for line in self.lines:
            self.fields[f"amount_{line.pk}"] = forms.DecimalField(
                label=f"Refund for {line.quantity} x {_sku_label(line)}",
                min_value=0,
                max_digits=12,
                decimal_places=2,
                initial=line.refund_total,
                help_text=f"Paid {line.paid} for these units; less is a partial refund.",
                disabled=line.quantity_refunded >= line.quantity,
            )

    def line_amounts(self) -> dict[int, object]:
        return {
            line.pk: self.cleaned_data[f"amount_{line.pk}"]
            for line in self.lines
            if self.cleaned_data.get(f"amount_{line.pk}") is not None
            and self.cleaned_data[f"amount_{line.pk}"] != line.refund_total
        }

    def execute(self, *, return_request: ReturnRequest, actor: AbstractBaseUser) -> ReturnRequest:
        if self.approving:
            return services.return_request_authorize(
                return_request=return_request,
                actor=actor,
                returnless=self.cleaned_data.get("returnless", False),
                refund_shipping=self.cleaned_data["refund_shipping"],
                line_amounts=self.line_amounts(),
            )
        return services.return_refund_terms_set(
            return_request=return_request,
            refund_shipping=self.cleaned_data["refund_shipping"],
            line_amounts=self.line_amounts(),
            actor=actor,
        )


# -- finding a return by a scanned code ---------------------------------------------------------


def receivable_returns() -> QuerySet[ReturnRequest]:
    """Returns with units still expected at the dock (the ones ``return_receive`` accepts)."""
    due = ReturnLine.objects.filter(
        return_request=OuterRef("pk"),
        quantity_received__lt=F("quantity") - F("quantity_not_returned"),
    )
    return ReturnRequest.objects.filter(
        Exists(due), status__in=RECEIVABLE_STATUSES, returnless=False
    )


def inspectable_returns() -> QuerySet[ReturnRequest]:
    """Returns with received units that wait for inspection."""
    waiting = ReturnLine.objects.filter(
        return_request=OuterRef("pk"), quantity_inspected__lt=F("quantity_received")
    )
    return ReturnRequest.objects.filter(Exists(waiting))


PURPOSES = {
    "receive": (receivable_returns, "to receive", "nothing left to receive"),
    "inspect": (inspectable_returns, "to inspect", "no received unit waits for inspection"),
}


def return_for_code(code: str, *, purpose: str) -> ReturnRequest:
    """The return a scanned code means: an RMA (exactly), or a channel order id whose one open
    return is ready for ``purpose`` (``receive`` or ``inspect``).

    Raises ``forms.ValidationError`` saying what was wrong, for the scanner page to show.
    """
    candidates, ready, not_ready = PURPOSES[purpose]
    code = code.strip()
    by_rma = ReturnRequest.objects.filter(Q(rma=code) | Q(rma=code.upper())).first()
    if by_rma is not None:
        if not candidates().filter(pk=by_rma.pk).exists():
            reason = not_ready
            if purpose == "receive" and by_rma.status not in RECEIVABLE_STATUSES:
                reason = "only an authorized return can be received"
            elif purpose == "receive" and by_rma.returnless:
                reason = "it was refunded without a return"
            raise forms.ValidationError(
                f"{by_rma.rma} is {by_rma.get_status_display()}: {reason}.", code="not_ready"
            )
        return by_rma
    matches = list(candidates().filter(order__external_id=code).order_by("respond_by", "pk")[:10])
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise forms.ValidationError(
            f"Order {code} has {len(matches)} returns {ready}: "
            f"{', '.join(r.rma for r in matches)}. Scan the RMA instead.",
            code="several",
        )
    if ReturnRequest.objects.filter(order__external_id=code).exists():
        raise forms.ValidationError(f"Order {code} has no return {ready}.", code="none_ready")
    raise forms.ValidationError(f"No RMA or order {code!r}.", code="unknown")


class ReturnLookupForm(forms.Form):
    """Step 1 of a scanner page: one input for an RMA or a channel order id."""

    code = forms.CharField(
        label="Scan RMA or order id",
        max_length=100,
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "off", "class": "returns-scan-input"}
        ),
    )

    def __init__(self, *args, purpose: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.purpose = purpose
        self.return_request: ReturnRequest | None = None

    def clean_code(self) -> str:
        code = self.cleaned_data["code"]
        self.return_request = return_for_code(code, purpose=self.purpose)
        return code


# -- receiving: count scanned units per line ------------------------------------------------------


def normalize_code(code: str) -> str:
    """Scanned codes compare case-blind; a GTIN compares without leading zeros, so an
    EAN-13 and its GTIN-14 form (or a UPC-A) read as the same item."""
    code = code.strip().upper()
    if code.isdigit():
        code = code.lstrip("0") or "0"
    return code


def line_codes(line: ReturnLine) -> list[str]:
    """Every code a scanner may read for a line: our SKU code, its barcode, the channel SKU."""
    codes = [line.order_line.seller_sku]
    if line.sku is not None:
        codes += [line.sku.code, line.sku.barcode]
    return sorted({normalize_code(code) for code in codes if code})


@dataclass
class ReceiveRow:
    line: ReturnLine
    due: int
    count: int
    field: forms.BoundField | None
    codes: list[str]


class ReceiveForm(forms.Form):
    """Step 2 of the receive page: the units counted per return line, plus the scan input.

    ``idempotency_key`` is generated when the page is first shown and carried through every
    scan, so submitting the same count twice (double click, resubmit) receives it once.
    """

    permission = "returns.receive_return"

    scan = forms.CharField(
        label="Scan SKU or barcode",
        required=False,
        max_length=100,
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "off", "class": "returns-scan-input"}
        ),
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(
        self,
        data=None,
        *,
        return_request: ReturnRequest,
        counts: dict[int, int] | None = None,
        idempotency_key: str = "",
    ):
        self.return_request = return_request
        self.lines = list(return_request.lines.select_related("sku", "order_line").order_by("id"))
        counts = counts or {}
        initial = {"idempotency_key": idempotency_key or uuid.uuid4().hex}
        super().__init__(data, initial=initial)
        for line in self.lines:
            due = line.quantity_due
            if due and line.sku_id:
                self.fields[f"qty_{line.pk}"] = forms.IntegerField(
                    min_value=0, max_value=due, initial=counts.get(line.pk, 0)
                )

    def rows(self) -> list[ReceiveRow]:
        counts = self.counts() if self.is_bound else {}
        rows = []
        for line in self.lines:
            name = f"qty_{line.pk}"
            field = self[name] if name in self.fields else None
            count = counts.get(line.pk, self.fields[name].initial if field else 0)
            rows.append(
                ReceiveRow(
                    line=line,
                    due=line.quantity_due,
                    count=count,
                    field=field,
                    codes=line_codes(line) if field else [],
                )
            )
        return rows

    def counts(self) -> dict[int, int]:
        """The counts as posted, read leniently (blank or garbage is 0, clamped to what is due)
        so a scan never fails on a half-typed quantity."""
        counts = {}
        for line in self.lines:
            name = f"qty_{line.pk}"
            if name not in self.fields:
                continue
            raw = self.data.get(self.add_prefix(name), "") if self.is_bound else ""
            try:
                value = int(raw)
            except (TypeError, ValueError):
                value = 0
            counts[line.pk] = max(0, min(value, self.fields[name].max_value))
        return counts

    def scanned(self, code: str, counts: dict[int, int]) -> tuple[bool, str]:
        """Add one unit to the line ``code`` names (mutating ``counts``); returns
        ``(ok, feedback)``. A SKU on several lines fills them in order."""
        wanted = normalize_code(code)
        if not wanted:
            return False, "Scan a SKU or barcode, or press Receive."
        matching = [row for row in self.rows() if row.field is not None and wanted in row.codes]
        if not matching:
            return False, f"Unknown code {code.strip()!r}: not on {self.return_request.rma}."
        for row in matching:
            if counts.get(row.line.pk, 0) < row.due:
                counts[row.line.pk] = counts.get(row.line.pk, 0) + 1
                return True, f"{_sku_label(row.line)}: {counts[row.line.pk]} of {row.due}"
        due = sum(row.due for row in matching)
        return False, f"All {due} of {_sku_label(matching[0].line)} are already counted."

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.errors and not any(
            cleaned.get(f"qty_{line.pk}") for line in self.lines if f"qty_{line.pk}" in cleaned
        ):
            raise forms.ValidationError("Scan at least one unit before receiving.")
        return cleaned

    def received_lines(self) -> dict[int, int]:
        return {
            line.pk: self.cleaned_data[f"qty_{line.pk}"]
            for line in self.lines
            if self.cleaned_data.get(f"qty_{line.pk}")
        }

    def execute(self, *, actor: AbstractBaseUser) -> ReturnRequest:
        """Receive the counted units; an empty count never reaches the service (where no
        lines means *everything expected*)."""
        return services.return_receive(
            return_request=self.return_request,
            lines=self.received_lines(),
            actor=actor,
            idempotency_key=self.cleaned_data["idempotency_key"],
        )


def _sku_label(line: ReturnLine) -> str:
    return line.sku.code if line.sku else line.order_line.seller_sku


# -- inspecting: one form per line with units waiting --------------------------------------------


class InspectForm(forms.Form):
    """Grade units of one return line. The grade comes from the button pressed; a hidden
    ``waiting`` (units waiting when the page was drawn) stops a double submit from grading
    the same unit twice."""

    permission = "returns.inspect_return"

    line = forms.IntegerField(widget=forms.HiddenInput)
    waiting = forms.IntegerField(widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=1, initial=1, label="Units")
    grade = forms.ChoiceField(
        choices=Inspection.Grade.choices,
        required=False,
        error_messages={"invalid_choice": "Unknown grade."},
    )
    restock_warehouse = forms.ModelChoiceField(
        queryset=Warehouse.objects.none(), required=False, label="Restock into"
    )
    disposition = forms.ChoiceField(
        choices=NON_SELLABLE_DISPOSITIONS,
        initial=Inspection.Disposition.WRITE_OFF,
        label="Then",
    )
    reason = forms.CharField(
        max_length=300,
        required=False,
        label="Why not sellable",
        widget=forms.TextInput(attrs={"size": 30, "autocomplete": "off"}),
    )

    def __init__(self, *args, return_line: ReturnLine, **kwargs):
        waiting = return_line.quantity_received - return_line.quantity_inspected
        kwargs.setdefault("prefix", f"line{return_line.pk}")
        kwargs.setdefault("initial", {})
        kwargs["initial"].update(
            {
                "line": return_line.pk,
                "waiting": waiting,
                "restock_warehouse": return_line.return_request.order.warehouse_id,
            }
        )
        super().__init__(*args, **kwargs)
        self.return_line = return_line
        self.waiting_now = waiting
        # The service refuses more units than wait; the widget only helps the keyboard.
        self.fields["quantity"].widget.attrs.update({"min": 1, "max": waiting})
        self.fields["restock_warehouse"].queryset = Warehouse.objects.filter(
            is_active=True
        ).exclude(kind__in=[Warehouse.Kind.QUARANTINE, Warehouse.Kind.FBA])

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("line") not in (None, self.return_line.pk):
            raise forms.ValidationError("This form belongs to another line.")
        if cleaned.get("waiting") is not None and cleaned["waiting"] != self.waiting_now:
            raise forms.ValidationError(
                f"This line changed since the page was shown: {self.waiting_now} unit(s) wait "
                "now. Check and submit again.",
                code="stale",
            )
        if not cleaned.get("grade") and "grade" not in self.errors:
            raise forms.ValidationError("Choose a grade: Sellable, Damaged or Defective.")
        return cleaned

    def execute(self, *, actor: AbstractBaseUser) -> Inspection:
        data = self.cleaned_data
        sellable = data["grade"] == Inspection.Grade.SELLABLE
        return services.return_inspect(
            return_line=self.return_line,
            grade=data["grade"],
            quantity=data["quantity"],
            restock_warehouse=data["restock_warehouse"] if sellable else None,
            disposition="" if sellable else data["disposition"],
            reason=data["reason"].strip(),
            actor=actor,
        )
