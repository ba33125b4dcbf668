"""Returns in the admin: the queue by time left to answer, the return page, the scanner pages,
the seller's automatic decision rules and the late-answer figures.

Returns are never edited through a form. Approve, reject and mark in transit are actions or
small forms that call ``returns.services``; receiving and inspecting happen on the scanner
pages (``returns.views``). A ``DomainError`` comes back as a message naming the return, and
each return is its own transaction, so one refusal never undoes the others.

The queue stays fast on millions of returns: related rows are selected up front, the value
and refund state are per-row subqueries (evaluated for the page only), the count is capped,
facets are off, and every filter is an indexed equality or a ``respond_by`` range.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import (
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from inventory.exceptions import DomainError
from inventory.models import SKU
from oms.admin import BulkActionMixin, CappedCountPaginator, ReadOnlyAdminMixin
from oms.models import MONEY, Order, OrderLine

from . import views
from .forms import (
    InspectForm,
    InTransitForm,
    ReceiveForm,
    RefundTermsForm,
    RejectForm,
    StopWaitingForm,
)
from .models import (
    AutoDecisionRule,
    Inspection,
    LateAnswerDaily,
    Refund,
    ReturnAlert,
    ReturnLine,
    ReturnRequest,
    ReturnStatus,
)
from .services import RECEIVABLE_STATUSES, refunds_retry, return_request_authorize

R = ReturnStatus
LIST_PER_PAGE = 50
DECIDE = "returns.decide_return"


# -- time left to answer ------------------------------------------------------------------------


def alert_window() -> timedelta:
    return timedelta(hours=settings.RETURNS_ALERT_BEFORE_HOURS)


def hours_text(delta: timedelta) -> str:
    """Whole hours (``31h``), or minutes under an hour (``45m``): a 48-hour clock needs no
    days."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    return f"{minutes // 60}h" if minutes >= 60 else f"{minutes}m"


def answer_countdown(return_request: ReturnRequest, *, now: datetime) -> tuple[str, str]:
    """``(state, text)`` for the answer deadline: ``overdue`` (``overdue 3h``), ``at_risk``
    within ``RETURNS_ALERT_BEFORE_HOURS`` (``at risk: 5h left``), ``on_time`` (``31h left``),
    or ``answered``/``answered_late`` once a decision was made."""
    if return_request.status != R.REQUESTED:
        if return_request.responded_at is None:
            return "answered", "-"
        if return_request.answered_late:
            late = return_request.responded_at - return_request.respond_by
            return "answered_late", f"answered {hours_text(late)} late"
        return "answered", "answered"
    left = return_request.respond_by - now
    if left <= timedelta(0):
        return "overdue", f"overdue {hours_text(-left)}"
    if left <= alert_window():
        return "at_risk", f"at risk: {hours_text(left)} left"
    return "on_time", f"{hours_text(left)} left"


def _countdown_html(return_request: ReturnRequest, now: datetime) -> str:
    state, text = answer_countdown(return_request, now=now)
    return format_html(
        '<span class="returns-answer returns-answer-{}" title="answer by {} UTC">{}</span>',
        state.replace("_", "-"),
        f"{return_request.respond_by:%Y-%m-%d %H:%M}",
        text,
    )


# -- the queue ----------------------------------------------------------------------------------


class AnswerDeadlineFilter(admin.SimpleListFilter):
    """Requests still waiting for an answer, by time left: ranges on ``respond_by`` around now
    with ``status = requested``, which the partial index on ``respond_by`` answers."""

    title = "answer deadline"
    parameter_name = "answer"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("overdue", "Overdue"), ("at_risk", "At risk"), ("on_time", "On time")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value not in ("overdue", "at_risk", "on_time"):
            return queryset
        now = timezone.now()
        horizon = now + alert_window()
        waiting = queryset.filter(status=R.REQUESTED)
        if value == "overdue":
            return waiting.filter(respond_by__lte=now)
        if value == "at_risk":
            return waiting.filter(respond_by__gt=now, respond_by__lte=horizon)
        return waiting.filter(respond_by__gt=horizon)


def return_queue() -> QuerySet[ReturnRequest]:
    """Returns with what the queue shows: related rows joined, value and latest refund state
    as subqueries (per row of the page, never a GROUP BY over the table)."""
    value = (
        ReturnLine.objects.filter(return_request=OuterRef("pk"))
        .values("return_request")
        .annotate(
            total=Sum(
                ExpressionWrapper(
                    F("unit_price") * F("quantity"), output_field=DecimalField(**MONEY)
                )
            )
        )
        .values("total")
    )
    latest_refund = Refund.objects.filter(return_request=OuterRef("pk")).order_by("-id")
    return ReturnRequest.objects.select_related("channel", "order", "decided_by_rule").annotate(
        value_total=Subquery(value, output_field=DecimalField(**MONEY)),
        refund_state=Subquery(latest_refund.values("state")[:1]),
    )


@admin.register(ReturnRequest)
class ReturnRequestAdmin(BulkActionMixin, admin.ModelAdmin):
    """The returns queue and the read-only return page; decisions call the return services."""

    bulk_noun = "return"

    list_display = (
        "rma",
        "channel_code",
        "order_link",
        "status_badge",
        "time_left",
        "reason_code",
        "value",
        "rule",
        "refund",
    )
    list_display_links = ("rma",)
    list_filter = (
        "status",
        "channel",
        AnswerDeadlineFilter,
        "fulfillment_model",
    )
    # Declared for the search box; get_search_results applies them without DISTINCT.
    search_fields = ("=rma", "=order__external_id", "=lines__order_line__seller_sku")
    search_help_text = "Exact RMA, channel order id, or SKU."
    list_select_related = ("channel", "order", "decided_by_rule")
    list_per_page = LIST_PER_PAGE
    show_full_result_count = False
    # Facet counts are one aggregate per filter choice: far too slow on millions of rows.
    show_facets = admin.ShowFacets.NEVER
    ordering = ("respond_by", "id")
    # Only indexed columns: sorting millions of rows by anything else is a full sort.
    sortable_by = ("rma", "time_left")
    paginator = CappedCountPaginator
    actions = ["approve_returns", "reject_returns"]

    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("rma", "status_badge"),
                    ("channel", "order_link", "fulfillment_model"),
                    ("channel_return_id", "reason_code"),
                    "buyer_comment",
                )
            },
        ),
        (
            "Answer",
            {
                "fields": (
                    ("requested_at", "respond_by", "time_left"),
                    ("responded_at", "rule"),
                    "decision_note",
                    ("returnless", "refund_shipping"),
                )
            },
        ),
        ("Receipt", {"fields": (("quarantine", "received_at", "closed_at"), "value")}),
    )
    readonly_fields = (
        "rma",
        "status_badge",
        "channel",
        "order_link",
        "fulfillment_model",
        "channel_return_id",
        "reason_code",
        "buyer_comment",
        "requested_at",
        "respond_by",
        "time_left",
        "responded_at",
        "rule",
        "decision_note",
        "returnless",
        "refund_shipping",
        "quarantine",
        "received_at",
        "closed_at",
        "value",
    )

    class Media:
        css = {"all": ("oms/admin.css",)}

    # -- permissions: returns come from channels and the API, and change only through services --

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DECIDE)

    # -- columns --

    @admin.display(description="channel", ordering="channel__code")
    def channel_code(self, obj: ReturnRequest) -> str:
        return obj.channel.code

    @admin.display(description="order")
    def order_link(self, obj: ReturnRequest) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:oms_order_change", args=[obj.order_id]),
            obj.order.external_id,
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ReturnRequest) -> str:
        return views.status_badge(obj)

    @admin.display(description="time to answer", ordering="respond_by")
    def time_left(self, obj: ReturnRequest) -> str:
        return _countdown_html(obj, timezone.now())

    @admin.display(description="value")
    def value(self, obj: ReturnRequest) -> str:
        total = getattr(obj, "value_total", None)
        if total is None:
            total = sum((line.value for line in obj.lines.all()), 0)
        return f"{total:.2f} {obj.order.currency}"

    @admin.display(description="auto-decided by")
    def rule(self, obj: ReturnRequest) -> str:
        return obj.decided_by_rule.name if obj.decided_by_rule else "-"

    @admin.display(description="refund")
    def refund(self, obj: ReturnRequest) -> str:
        state = getattr(obj, "refund_state", None)
        if not state:
            return "-"
        return format_html(
            '<span class="returns-refund returns-refund-{}">{}</span>',
            state,
            Refund.State(state).label,
        )

    # -- changelist --

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return return_queue()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """The whole term against the RMA (exact), the channel order id (exact) and the SKU of
        a line (ours or the channel's); orders and lines match by ``IN (subquery)``, so no
        return appears twice and no DISTINCT is needed."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # Every branch is a condition on an indexed column of this table or the lines', so
        # the database can answer each from an index and OR the results.
        lines = ReturnLine.objects.filter(
            Q(order_line_id__in=OrderLine.objects.filter(seller_sku=term).values("pk"))
            | Q(sku_id__in=SKU.objects.filter(code=term).values("pk"))
        )
        matches = (
            Q(rma=term)
            | Q(rma=term.upper())
            | Q(order_id__in=Order.objects.filter(external_id=term).values("pk"))
            | Q(pk__in=lines.values("return_request_id"))
        )
        return queryset.filter(matches), False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {
            "title": "Returns queue",
            **(extra_context or {}),
            "scanner_tools": self._scanner_tools(request),
        }
        return super().changelist_view(request, extra_context)

    def _scanner_tools(self, request: HttpRequest) -> list[dict]:
        tools = []
        if request.user.has_perm(ReceiveForm.permission):
            tools.append(
                {"label": "Receive parcels", "url": reverse("admin:returns_returnrequest_receive")}
            )
        if request.user.has_perm(InspectForm.permission):
            tools.append(
                {"label": "Inspect units", "url": reverse("admin:returns_returnrequest_inspect")}
            )
        return tools

    # -- return page --

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: ReturnRequest | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self._return_sections(request, obj))
            context["subtitle"] = f"{obj.rma}: {obj.channel.code} order {obj.order.external_id}"
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _return_sections(self, request: HttpRequest, return_request: ReturnRequest) -> dict:
        lines = list(
            return_request.lines.select_related("sku", "order_line").prefetch_related(
                Prefetch(
                    "inspections",
                    queryset=Inspection.objects.select_related("restock_warehouse").order_by(
                        "inspected_at", "id"
                    ),
                )
            )
        )
        refunds = list(
            return_request.refunds.prefetch_related("lines__return_line__order_line").order_by("id")
        )
        labels = dict(ReturnStatus.choices)
        events = [
            {
                "event": event,
                "from": labels.get(event.from_status, event.from_status),
                "to": labels.get(event.to_status, event.to_status),
                "data": json.dumps(event.data, sort_keys=True, default=str) if event.data else "",
            }
            for event in return_request.events.order_by("created_at", "id")
        ]
        return {
            "return_request": return_request,
            "return_tools": self._return_tools(request, return_request),
            "return_lines": lines,
            "refunds": refunds,
            "events": events,
            "payload": json.dumps(return_request.raw_payload, indent=2, default=str)
            if return_request.raw_payload
            else "",
        }

    def _return_tools(self, request: HttpRequest, return_request: ReturnRequest) -> list[dict]:
        """The buttons on the return page: those the user may use and the status allows."""
        pk, status = return_request.pk, return_request.status
        tools = []
        if self.has_decide_permission(request) and status == R.REQUESTED:
            tools.append(
                {
                    "label": "Approve",
                    "url": reverse("admin:returns_returnrequest_approve", args=[pk]),
                    "post": True,
                }
            )
            tools.append(
                {
                    "label": "Approve with refund terms",
                    "url": reverse("admin:returns_returnrequest_approve_terms", args=[pk]),
                }
            )
            tools.append(
                {"label": "Reject", "url": reverse("admin:returns_returnrequest_reject", args=[pk])}
            )
        if (
            self.has_decide_permission(request)
            and status in (R.AUTHORIZED, R.IN_TRANSIT, R.RECEIVED, R.INSPECTED)
            and any(line.quantity_refunded < line.quantity for line in return_request.lines.all())
        ):
            tools.append(
                {
                    "label": "Refund terms",
                    "url": reverse("admin:returns_returnrequest_refund_terms", args=[pk]),
                }
            )
        if self.has_decide_permission(request) and any(
            refund.state == Refund.State.FAILED for refund in return_request.refunds.all()
        ):
            tools.append(
                {
                    "label": "Send failed refund again",
                    "url": reverse("admin:returns_returnrequest_retry_refunds", args=[pk]),
                    "post": True,
                }
            )
        if (
            self._may_mark_in_transit(request)
            and status == R.AUTHORIZED
            and not return_request.returnless
        ):
            tools.append(
                {
                    "label": "Mark in transit",
                    "url": reverse("admin:returns_returnrequest_in_transit", args=[pk]),
                }
            )
        lines = list(return_request.lines.all())
        due = sum(line.quantity_due for line in lines)
        waiting = sum(line.quantity_received - line.quantity_inspected for line in lines)
        receivable = due and status in RECEIVABLE_STATUSES and not return_request.returnless
        query = f"?rma={return_request.rma}"
        if receivable and request.user.has_perm(ReceiveForm.permission):
            tools.append(
                {"label": "Receive", "url": reverse("admin:returns_returnrequest_receive") + query}
            )
            tools.append(
                {
                    "label": "Stop waiting for the rest",
                    "url": reverse("admin:returns_returnrequest_stop_waiting", args=[pk]),
                }
            )
        if waiting and request.user.has_perm(InspectForm.permission):
            tools.append(
                {"label": "Inspect", "url": reverse("admin:returns_returnrequest_inspect") + query}
            )
        return tools

    def _may_mark_in_transit(self, request: HttpRequest) -> bool:
        # Customer service hears of the parcel from the buyer, the dock from the carrier.
        user = request.user
        return user.has_perm(DECIDE) or user.has_perm(ReceiveForm.permission)

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("receive/", wrap(self.receive_view), name="returns_returnrequest_receive"),
            path("inspect/", wrap(self.inspect_view), name="returns_returnrequest_inspect"),
            path(
                "<path:object_id>/approve/",
                wrap(require_POST(self.approve_view)),
                name="returns_returnrequest_approve",
            ),
            path(
                "<path:object_id>/retry-refunds/",
                wrap(require_POST(self.retry_refunds_view)),
                name="returns_returnrequest_retry_refunds",
            ),
            path(
                "<path:object_id>/reject/",
                wrap(self.form_view),
                {"form_class": RejectForm},
                name="returns_returnrequest_reject",
            ),
            path(
                "<path:object_id>/in-transit/",
                wrap(self.form_view),
                {"form_class": InTransitForm},
                name="returns_returnrequest_in_transit",
            ),
            path(
                "<path:object_id>/approve-terms/",
                wrap(self.form_view),
                {"form_class": RefundTermsForm, "approving": True},
                name="returns_returnrequest_approve_terms",
            ),
            path(
                "<path:object_id>/refund-terms/",
                wrap(self.form_view),
                {"form_class": RefundTermsForm},
                name="returns_returnrequest_refund_terms",
            ),
            path(
                "<path:object_id>/stop-waiting/",
                wrap(self.form_view),
                {"form_class": StopWaitingForm},
                name="returns_returnrequest_stop_waiting",
            ),
            *super().get_urls(),
        ]

    def receive_view(self, request: HttpRequest) -> HttpResponse:
        return views.receive_view(request, self)

    def inspect_view(self, request: HttpRequest) -> HttpResponse:
        return views.inspect_view(request, self)

    def _return_or_404(self, request: HttpRequest, object_id: str) -> ReturnRequest:
        return_request = self.get_object(request, unquote(object_id))
        if return_request is None:
            raise Http404(f"No return with id {object_id!r}.")
        return return_request

    def approve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_decide_permission(request):
            raise PermissionDenied
        return_request = self._return_or_404(request, object_id)
        try:
            after = return_request_authorize(return_request=return_request, actor=request.user)
        except DomainError as exc:
            self.message_user(request, _about(return_request, exc), messages.ERROR)
        else:
            self.message_user(request, f"Approved {after.rma}.", messages.SUCCESS)
        return redirect("admin:returns_returnrequest_change", return_request.pk)

    def retry_refunds_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_decide_permission(request):
            raise PermissionDenied
        return_request = self._return_or_404(request, object_id)
        try:
            sent = refunds_retry(return_request=return_request, actor=request.user)
        except DomainError as exc:
            self.message_user(request, _about(return_request, exc), messages.ERROR)
        else:
            self.message_user(
                request,
                f"{return_request.rma}: {len(sent)} failed refund(s) queued to send again.",
                messages.SUCCESS,
            )
        return redirect("admin:returns_returnrequest_change", return_request.pk)

    def form_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_class: type[RejectForm | InTransitForm | RefundTermsForm | StopWaitingForm],
        approving: bool = False,
    ) -> HttpResponse:
        """Reject, mark in transit, approve with refund terms, change the refund terms or
        stop waiting for the rest: on a refusal the form is shown again with the message;
        nothing has changed."""
        if form_class is InTransitForm:
            allowed = self._may_mark_in_transit(request)
        else:
            allowed = request.user.has_perm(form_class.permission)
        if not allowed:
            raise PermissionDenied
        return_request = self._return_or_404(request, object_id)

        def make_form(data=None):
            if form_class is RefundTermsForm:
                return form_class(data, return_request=return_request, approving=approving)
            return form_class(data)

        if request.method == "POST":
            form = make_form(request.POST)
            if form.is_valid():
                try:
                    after = form.execute(return_request=return_request, actor=request.user)
                except DomainError as exc:
                    self.message_user(request, _about(return_request, exc), messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"{form.title}: {after.rma} is now {after.get_status_display()}.",
                        messages.SUCCESS,
                    )
                    return redirect("admin:returns_returnrequest_change", return_request.pk)
        else:
            form = make_form()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{form.title}: {return_request.rma}",
            "return_request": return_request,
            "status_badge": views.status_badge(return_request),
            "form": form,
            "submit_label": form.title,
        }
        return TemplateResponse(request, "admin/returns/returnrequest/return_form.html", context)

    # -- bulk decisions --

    def _run(
        self,
        request: HttpRequest,
        selected: list[ReturnRequest],
        call: Callable[[ReturnRequest], ReturnRequest],
        *,
        done: str,
    ) -> None:
        succeeded, failed = 0, []
        for return_request in selected:
            try:
                call(return_request)
            except DomainError as exc:
                failed.append(_about(return_request, exc))
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{done}: {succeeded} return(s).", messages.SUCCESS)
        self._report_refusals(request, failed)

    @admin.action(description="Approve selected returns", permissions=["decide"])
    def approve_returns(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = self._selection(request, queryset)
        if selected is None:
            return

        def call(return_request: ReturnRequest) -> ReturnRequest:
            return return_request_authorize(return_request=return_request, actor=request.user)

        self._run(request, selected, call, done="Approved")

    @admin.action(description="Reject selected returns (with a reason)", permissions=["decide"])
    def reject_returns(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        """The first post shows the reason form for the selection; the second (with
        ``apply``) rejects each return with that reason."""
        selected = self._selection(request, queryset)
        if selected is None:
            return None
        if "apply" in request.POST:
            form = RejectForm(request.POST)
            if form.is_valid():

                def call(return_request: ReturnRequest) -> ReturnRequest:
                    return form.execute(return_request=return_request, actor=request.user)

                self._run(request, selected, call, done="Rejected")
                return None
        else:
            form = RejectForm()
        return self._bulk_form_response(
            request,
            title=f"Reject {len(selected)} return(s)",
            selection=[
                (
                    r.pk,
                    r.rma,
                    f"{r.channel.code} order {r.order.external_id}, {r.get_status_display()}",
                )
                for r in selected
            ],
            form=form,
            action="reject_returns",
            submit_label="Reject",
        )


def _about(return_request: ReturnRequest, exc: DomainError) -> str:
    """A refusal naming its return (service messages mostly do already)."""
    if return_request.rma in exc.message:
        return exc.message
    return f"{return_request.rma}: {exc.message}"


# -- rules, alerts and figures --------------------------------------------------------------------


@admin.register(AutoDecisionRule)
class AutoDecisionRuleAdmin(admin.ModelAdmin):
    """The seller's rules for answering returns without staff, tried in priority order."""

    list_display = (
        "name",
        "priority",
        "is_active",
        "action",
        "channel",
        "reason_codes",
        "category",
        "max_value",
        "refund_shipping",
    )
    list_display_links = ("name",)
    list_editable = ("priority", "is_active")
    list_filter = ("is_active", "action", "channel")
    list_select_related = ("channel",)
    search_fields = ("name",)
    ordering = ("priority", "id")
    fields = (
        "name",
        "priority",
        "is_active",
        "action",
        "channel",
        "reason_codes",
        "category",
        "max_value",
        "refund_shipping",
    )


@admin.register(ReturnAlert)
class ReturnAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Requests close to their 48 hours without an answer; raised once each by a task."""

    list_display = ("return_link", "channel", "status", "respond_by", "raised_at", "emailed_to")
    list_filter = ("return_request__status", "return_request__channel")
    search_fields = ("=return_request__rma",)
    search_help_text = "Exact RMA."
    list_select_related = ("return_request", "return_request__channel")
    ordering = ("-raised_at", "-id")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = LIST_PER_PAGE

    @admin.display(description="return", ordering="return_request__rma")
    def return_link(self, obj: ReturnAlert) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:returns_returnrequest_change", args=[obj.return_request_id]),
            obj.return_request.rma,
        )

    @admin.display(description="channel")
    def channel(self, obj: ReturnAlert) -> str:
        return obj.return_request.channel.code

    @admin.display(description="status")
    def status(self, obj: ReturnAlert) -> str:
        return views.status_badge(obj.return_request)

    @admin.display(description="answer by", ordering="return_request__respond_by")
    def respond_by(self, obj: ReturnAlert) -> datetime:
        return obj.return_request.respond_by

    class Media:
        css = {"all": ("oms/admin.css",)}


@admin.register(LateAnswerDaily)
class LateAnswerDailyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Per channel and day: requests answered, and how many after their 48 hours."""

    list_display = ("day", "channel", "answered", "answered_late", "late_rate")
    list_filter = ("channel",)
    date_hierarchy = "day"
    list_select_related = ("channel",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = LIST_PER_PAGE

    @admin.display(description="late")
    def late_rate(self, obj: LateAnswerDaily) -> str:
        if not obj.answered:
            return "-"
        return f"{100 * obj.answered_late / obj.answered:.1f}%"
