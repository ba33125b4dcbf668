"""The warehouse's scanner pages for returns, served inside the admin
(``/admin/returns/returnrequest/receive/`` and ``.../inspect/``).

Both are built for a barcode scanner that types a code and presses Enter: step 1 takes an
RMA or a channel order id, step 2 works on that return. Everything works with plain form
posts; a little script on the receive page counts scans without a round trip, so a fast
scanner never loses a keystroke to a page load. Writes go through ``returns.services``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from inventory.exceptions import DomainError

from .forms import (
    InspectForm,
    ReceiveForm,
    ReturnLookupForm,
    line_codes,
    normalize_code,
    return_for_code,
)
from .models import Inspection, ReturnLine, ReturnRequest
from .services import return_quarantine_warehouse

RECEIVE_URL = "admin:returns_returnrequest_receive"
INSPECT_URL = "admin:returns_returnrequest_inspect"


def status_badge(return_request: ReturnRequest) -> str:
    return format_html(
        '<span class="oms-badge returns-status-{}">{}</span>',
        return_request.status.replace("_", "-"),
        return_request.get_status_display(),
    )


def _page_url(name: str, **params: str) -> str:
    return reverse(name) + (f"?{urlencode(params)}" if params else "")


def _change_url(return_request: ReturnRequest) -> str:
    return reverse("admin:returns_returnrequest_change", args=[return_request.pk])


def _render(
    request: HttpRequest, model_admin: admin.ModelAdmin, template: str, title: str, **context
) -> TemplateResponse:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        **context,
    }
    return TemplateResponse(request, f"admin/returns/returnrequest/{template}", context)


def _lookup(
    request: HttpRequest, model_admin: admin.ModelAdmin, *, purpose: str, url_name: str
) -> HttpResponse:
    """Step 1: scan an RMA or an order id; a match moves on to ``?rma=``."""
    form = ReturnLookupForm(request.GET if "code" in request.GET else None, purpose=purpose)
    if form.is_bound and form.is_valid():
        return redirect(_page_url(url_name, rma=form.return_request.rma))
    return _render(
        request,
        model_admin,
        "scan_lookup.html",
        f"{purpose.capitalize()} returns",
        form=form,
        purpose=purpose,
        step_url=reverse(url_name),
    )


def _ready_return(
    request: HttpRequest, rma: str, purpose: str, url_name: str
) -> ReturnRequest | HttpResponse:
    """The return ``rma`` names if it is ready for ``purpose``; otherwise a redirect back to
    step 1 with the reason as an error message."""
    try:
        return return_for_code(rma, purpose=purpose)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(_page_url(url_name))


# -- receive -------------------------------------------------------------------------------------


def receive_view(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Receive a returned parcel: count its units by scanning, then book them into quarantine
    with ``return_receive`` under the page's idempotency key."""
    if not request.user.has_perm(ReceiveForm.permission):
        raise PermissionDenied
    rma = request.GET.get("rma", "").strip()
    if not rma:
        return _lookup(request, model_admin, purpose="receive", url_name=RECEIVE_URL)
    action = request.POST.get("action", "scan") if request.method == "POST" else ""
    if action == "receive":
        # Checked before readiness: the first submit may have received everything, and the
        # second must then say "already done", not "nothing left to receive".
        replayed = _receipt_replayed(rma, request.POST.get("idempotency_key", ""))
        if replayed is not None:
            messages.warning(
                request, f"{replayed.rma}: this count was already received; nothing changed."
            )
            return redirect(_change_url(replayed))
    return_request = _ready_return(request, rma, "receive", RECEIVE_URL)
    if not isinstance(return_request, ReturnRequest):
        return return_request
    feedback, feedback_ok = "", True
    if action == "receive":
        form = ReceiveForm(request.POST, return_request=return_request)
        if form.is_valid():
            try:
                after = form.execute(actor=request.user)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, _received_message(after, form.received_lines(), form))
                return redirect(_change_url(after))
    elif action:
        posted = ReceiveForm(request.POST, return_request=return_request)
        counts = posted.counts()
        verb, _, line_id = action.partition(":")
        if verb in ("plus", "minus") and line_id.isdigit() and int(line_id) in counts:
            step = 1 if verb == "plus" else -1
            due = posted.fields[f"qty_{line_id}"].max_value
            counts[int(line_id)] = max(0, min(counts[int(line_id)] + step, due))
        else:
            feedback_ok, feedback = posted.scanned(request.POST.get("scan", ""), counts)
        form = ReceiveForm(
            return_request=return_request,
            counts=counts,
            idempotency_key=request.POST.get("idempotency_key", ""),
        )
    else:
        form = ReceiveForm(return_request=return_request)
    try:
        quarantine, quarantine_error = return_quarantine_warehouse(return_request), ""
    except DomainError as exc:
        quarantine, quarantine_error = None, exc.message
    rows = form.rows()
    return _render(
        request,
        model_admin,
        "scan_receive.html",
        f"Receive {return_request.rma}",
        return_request=return_request,
        status_badge=status_badge(return_request),
        form=form,
        rows=rows,
        scan_codes={
            str(row.line.pk): {"codes": row.codes, "label": row.line.sku.code, "due": row.due}
            for row in rows
            if row.field is not None
        },
        feedback=feedback,
        feedback_ok=feedback_ok,
        quarantine=return_request.quarantine or quarantine,
        quarantine_error=quarantine_error,
        change_url=_change_url(return_request),
        step_url=reverse(RECEIVE_URL),
    )


def _receipt_replayed(rma: str, key: str) -> ReturnRequest | None:
    """The return whose receipt under ``key`` was already applied (read for the message only;
    ``return_receive`` itself guarantees a key applies once)."""
    if not key:
        return None
    return ReturnRequest.objects.filter(
        rma=rma, events__kind="received", events__data__idempotency_key=key
    ).first()


def _received_message(after: ReturnRequest, lines: dict[int, int], form: ReceiveForm) -> str:
    labels = {line.pk: (line.sku.code if line.sku else str(line)) for line in form.lines}
    items = ", ".join(f"{labels[pk]} x {qty}" for pk, qty in lines.items())
    where = f" into quarantine {after.quarantine.code}" if after.quarantine else ""
    return (
        f"Received {sum(lines.values())} unit(s) of {after.rma}{where}: {items}. "
        f"The return is now {after.get_status_display()}."
    )


# -- inspect -------------------------------------------------------------------------------------


def inspect_view(request: HttpRequest, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Grade received units line by line with ``return_inspect``: sellable units go back into
    a sellable warehouse, damaged or defective ones are written off or sent to the supplier."""
    if not request.user.has_perm(InspectForm.permission):
        raise PermissionDenied
    rma = request.GET.get("rma", "").strip()
    if not rma:
        return _lookup(request, model_admin, purpose="inspect", url_name=INSPECT_URL)
    bound: InspectForm | None = None
    if request.method == "POST":
        return_request = get_object_or_404(ReturnRequest, rma=rma)
        line = get_object_or_404(
            ReturnLine.objects.select_related("sku", "order_line", "return_request__order"),
            pk=request.POST.get("line") if str(request.POST.get("line", "")).isdigit() else 0,
            return_request=return_request,
        )
        bound = InspectForm(request.POST, return_line=line)
        if bound.is_valid():
            try:
                inspection = bound.execute(actor=request.user)
            except DomainError as exc:
                bound.add_error(None, exc.message)
            else:
                return _after_inspection(request, return_request, inspection)
    return_request = _ready_return(request, rma, "inspect", INSPECT_URL)
    if not isinstance(return_request, ReturnRequest):
        return return_request
    waiting = list(
        return_request.lines.filter(quantity_inspected__lt=F("quantity_received"))
        .select_related("sku", "order_line", "return_request__order")
        .order_by("id")
    )
    scanned = request.GET.get("sku", "")
    current, feedback = _scanned_line(waiting, scanned)
    if bound is not None:
        current = bound.return_line.pk
    forms = [
        bound
        if bound is not None and bound.return_line.pk == line.pk
        else InspectForm(return_line=line)
        for line in waiting
    ]
    if current is None and len(forms) == 1:
        current = forms[0].return_line.pk
    # The line being worked on comes first, so its buttons are where the keyboard starts.
    forms.sort(key=lambda form: form.return_line.pk != current)
    inspections = (
        Inspection.objects.filter(return_line__return_request=return_request)
        .select_related("return_line__sku", "return_line__order_line", "restock_warehouse")
        .order_by("inspected_at", "id")
    )
    return _render(
        request,
        model_admin,
        "scan_inspect.html",
        f"Inspect {return_request.rma}",
        return_request=return_request,
        status_badge=status_badge(return_request),
        forms=forms,
        current=current,
        scanned=scanned,
        feedback=feedback,
        inspections=inspections,
        change_url=_change_url(return_request),
        step_url=reverse(INSPECT_URL),
    )


def _scanned_line(lines: list[ReturnLine], code: str) -> tuple[int | None, str]:
    """The waiting line a scanned SKU or barcode picks, or an error to show."""
    if not code.strip():
        return None, ""
    wanted = normalize_code(code)
    for line in lines:
        if wanted in line_codes(line):
            return line.pk, ""
    return None, f"Unknown code {code.strip()!r}: no unit of it waits for inspection here."


def _after_inspection(
    request: HttpRequest, return_request: ReturnRequest, inspection: Inspection
) -> HttpResponse:
    line = inspection.return_line
    where = f" into {inspection.restock_warehouse.code}" if inspection.restock_warehouse else ""
    messages.success(
        request,
        f"{return_request.rma}: {inspection.quantity} x "
        f"{line.sku.code if line.sku else line.order_line.seller_sku} "
        f"{inspection.get_grade_display().lower()}, "
        f"{inspection.get_disposition_display().lower()}{where}.",
    )
    return_request.refresh_from_db()
    if return_request.lines.filter(quantity_inspected__lt=F("quantity_received")).exists():
        return redirect(_page_url(INSPECT_URL, rma=return_request.rma))
    messages.info(
        request,
        f"Every received unit of {return_request.rma} is inspected; the return is "
        f"{return_request.get_status_display()}.",
    )
    return redirect(_change_url(return_request))
