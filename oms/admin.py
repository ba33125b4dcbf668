"""Manage Orders: the order changelist and order page, sales channels and deadline alerts.

Orders are never edited through a form. Every change is an action (bulk, on the changelist)
or a small form (on the order page) that calls the service in ``oms.services``; a
``DomainError`` comes back as an error message naming the order, and each order is its own
transaction, so one refusal never undoes or hides the others.

The changelist stays fast on millions of orders: related rows are selected up front, the
row count is capped instead of a full ``COUNT(*)`` (``CappedCountPaginator``), facet counts
are off, filters are plain equalities and ranges on the order row (the at-risk filter is a
range on ``ship_by``, not a computed column), and search uses exact or prefix matches and
``pk IN (subquery)`` for lines and shipments, so it needs no ``DISTINCT``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ALL_VAR, PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from inventory.exceptions import DomainError
from oms.carriers import UnknownCarrier, tracking_url
from oms.deadlines import deadline_status
from oms.documents import packing_slips_pdf, pick_list_build, pick_list_pdf
from oms.exceptions import OrderError
from oms.forms import (
    AddressForm,
    CancelForm,
    HoldForm,
    MapSkuForm,
    OrderActionForm,
    ShipForm,
)
from oms.models import (
    OPEN_STATUSES,
    TO_SHIP_STATUSES,
    TRANSITIONS,
    DeadlineAlert,
    FulfillmentModel,
    HoldReason,
    Order,
    OrderLine,
    OrderPayloadVersion,
    OrderStatus,
    RoutingRule,
    SalesChannel,
    Shipment,
    ShipmentLine,
)
from oms.reports import order_report_response
from oms.selectors import order_list, order_reservations
from oms.services.allocation import order_allocate
from oms.services.orders import (
    order_address_editable,
    order_hold_release,
    order_release_to_warehouse,
)

S = OrderStatus
LIST_PER_PAGE = 50
# Bulk actions that call a service or print documents load the selection; beyond this
# the request would run for minutes, so the action refuses and asks for a narrower filter.
MAX_SELECTION = 1000
# Per-object messages after a bulk action; the rest are counted in one more message.
MAX_MESSAGES = 20


class BulkActionMixin:
    """Admin actions that run a service over a selection: capped at ``MAX_SELECTION``, each
    object on its own so one refusal never stops the rest, refusals reported one by one (the
    first ``MAX_MESSAGES``), and, for input, one intermediate form for the whole selection."""

    bulk_noun = "object"

    def _selection(self, request: HttpRequest, queryset: QuerySet) -> list | None:
        selected = list(queryset[: MAX_SELECTION + 1])
        if len(selected) > MAX_SELECTION:
            self.message_user(
                request,
                f"More than {MAX_SELECTION} {self.bulk_noun}s selected: nothing was done. "
                "Filter the list further and select again.",
                messages.ERROR,
            )
            return None
        return selected

    def _report_refusals(self, request: HttpRequest, refusals: list[str]) -> None:
        for message in refusals[:MAX_MESSAGES]:
            self.message_user(request, message, messages.ERROR)
        if len(refusals) > MAX_MESSAGES:
            self.message_user(
                request,
                f"{len(refusals) - MAX_MESSAGES} more {self.bulk_noun}(s) were refused as well.",
                messages.ERROR,
            )

    def _bulk_form_response(
        self,
        request: HttpRequest,
        *,
        title: str,
        selection: list[tuple[int, str, str]],
        form,
        action: str,
        submit_label: str,
    ) -> TemplateResponse:
        """The intermediate page: ``selection`` holds a (pk, label, detail) per object."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "selection": selection,
            "noun": self.bulk_noun,
            "form": form,
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "submit_label": submit_label,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/bulk_action_form.html", context)


class ReadOnlyAdminMixin:
    """Rows written only by services: viewable, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CappedCountPaginator(Paginator):
    """A paginator that counts at most ``cap`` rows.

    The admin asks its paginator for the number of matching rows on every changelist page.
    An exact ``COUNT(*)`` over millions of orders reads every matching row (PostgreSQL keeps
    no row count), which takes seconds; counting a ``LIMIT cap + 1`` subquery reads at most
    ``cap + 1`` index entries whatever the table's size. Past the cap the page says "more
    than" and the pages beyond are not offered: nobody pages through 10,000 orders, they filter.
    """

    cap = 10_000
    capped = False

    @cached_property
    def count(self) -> int:
        # Unordered: any index that answers the filter will do for counting.
        counted = self.object_list.order_by()[: self.cap + 1].count()
        self.capped = counted > self.cap
        return min(counted, self.cap)


# -- ship-by countdown --------------------------------------------------------------------------


def at_risk_window() -> timedelta:
    return timedelta(minutes=settings.OMS_AT_RISK_MINUTES)


def duration_text(delta: timedelta) -> str:
    """A short human duration: ``2d 4h``, ``3h 20m``, ``3h``, ``45m``."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def ship_by_countdown(order: Order, *, now: datetime) -> tuple[str, str]:
    """``(state, text)`` for an order's ship-by: state is ``late``, ``at_risk``, ``on_time``
    (from ``deadline_status``), ``done`` or ``none``; text is e.g. ``in 3h 20m`` or
    ``2h late``."""
    if order.status not in OPEN_STATUSES:
        return "done", order.get_status_display().lower()
    if order.ship_by is None:
        return "none", "-"
    state = deadline_status(
        now=now,
        pack_by=order.pack_by or order.ship_by,
        ship_by=order.ship_by,
        at_risk_within=at_risk_window(),
    )
    if state == "late":
        return state, f"{duration_text(now - order.ship_by)} late"
    return state, f"in {duration_text(order.ship_by - now)}"


def _countdown_html(order: Order, now: datetime) -> str:
    state, text = ship_by_countdown(order, now=now)
    if state in ("done", "none"):
        return format_html('<span class="oms-deadline oms-deadline-none">{}</span>', text)
    label = {"late": "late", "at_risk": "at risk", "on_time": "on time"}[state]
    # FBA deadlines are Amazon's to meet: shown for information, muted.
    informational = order.fulfillment_model == FulfillmentModel.FBA
    return format_html(
        '<span class="oms-deadline oms-deadline-{}{}" title="ship by {} UTC ({})">{}</span>',
        state.replace("_", "-"),
        " oms-deadline-info" if informational else "",
        f"{order.ship_by:%Y-%m-%d %H:%M}",
        label + (", Amazon ships" if informational else ""),
        text,
    )


def _status_badge(order: Order) -> str:
    return format_html(
        '<span class="oms-badge oms-status-{}">{}</span>',
        order.status.replace("_", "-"),
        order.get_status_display(),
    )


# -- filters ------------------------------------------------------------------------------------


class ShipByFilter(admin.SimpleListFilter):
    """Open merchant-fulfilled orders by where they stand against their ship-by, as the
    ``deadline_status`` rule expressed as ranges on ``ship_by``/``pack_by`` relative to now,
    so the database answers it from the ship-by index."""

    title = "ship-by"
    parameter_name = "ship_by_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("late", "Late"), ("at_risk", "At risk"), ("on_time", "On time")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value not in ("late", "at_risk", "on_time"):
            return queryset
        now = timezone.now()
        horizon = now + at_risk_window()
        open_orders = queryset.filter(status__in=OPEN_STATUSES).exclude(
            fulfillment_model=FulfillmentModel.FBA
        )
        if value == "late":
            return open_orders.filter(ship_by__lt=now)
        if value == "at_risk":
            return open_orders.filter(ship_by__gte=now, pack_by__lte=horizon)
        # pack_by <= ship_by always, so the ship_by bound is implied; it lets the index help.
        return open_orders.filter(pack_by__gt=horizon, ship_by__gt=horizon)


class HoldReasonFilter(admin.SimpleListFilter):
    title = "on hold"
    parameter_name = "hold"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("any", "Any reason"), *HoldReason.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "any":
            # The same condition as the partial index on hold_reason.
            return queryset.exclude(hold_reason="")
        if value:
            return queryset.filter(hold_reason=value)
        return queryset


class WarehouseDeliveryFilter(admin.SimpleListFilter):
    """Orders with a message to their API warehouse (release, cancel, address change) that is
    being retried, has failed or was refused. The messages live in ``channels_app``, which
    depends on this app, so the model is looked up by name; the choices are fixed, so the
    changelist runs no query for them."""

    title = "warehouse delivery"
    parameter_name = "warehouse_delivery"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [
            ("retrying", "Retrying"),
            ("failed", "Failed"),
            ("refused", "Refused: already shipped"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value not in ("retrying", "failed", "refused") or not apps.is_installed("channels_app"):
            return queryset
        requests = apps.get_model("channels_app", "FulfillmentRequest").objects.order_by()
        if value == "retrying":
            requests = requests.filter(state="pending", attempts__gt=0)
        else:
            requests = requests.filter(state=value)
        return queryset.filter(pk__in=requests.values("order_id"))


class PurchaseDateFilter(admin.DateFieldListFilter):
    """Django's date links plus a from/before form for any date range."""

    template = "admin/oms/order/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        # The range form submits empty inputs and plain dates; a plain date means midnight in
        # the user's zone (as the links do), and an empty one means no bound.
        used = {}
        for key, values in self.used_parameters.items():
            values = [self._aware(value) for value in values if value]
            if values:
                used[key] = values
        self.used_parameters = used

    @staticmethod
    def _aware(value: str) -> str | datetime:
        day = parse_date(value) if len(value) == 10 else None
        if day is None:
            return value
        return timezone.make_aware(datetime(day.year, day.month, day.day))

    def choices(self, changelist) -> Any:
        bounds = (self.lookup_kwarg_since, self.lookup_kwarg_until)
        self.range_since = (self.date_params.get(bounds[0]) or "")[:10]
        self.range_until = (self.date_params.get(bounds[1]) or "")[:10]
        self.range_keep = [(k, v) for k, v in changelist.params.items() if k not in bounds]
        yield from super().choices(changelist)


@dataclass(frozen=True)
class OrderCommand:
    """A one-click order action: the service it calls and who may call it."""

    permission: str
    service: Callable[..., Order]
    done: str
    only_from: frozenset[str] | None = None
    refusal: str = ""

    def refused(self, order: Order) -> str:
        """Why the admin will not call the service for ``order`` ("" when it will)."""
        if self.only_from is None or order.status in self.only_from:
            return ""
        return f"Order {order.external_id} is {order.get_status_display()}: {self.refusal}"


ORDER_COMMANDS: dict[str, OrderCommand] = {
    "allocate": OrderCommand("allocate", order_allocate, "Allocated"),
    # The state machine lets a held order move to released, which would send an order held
    # for an unknown SKU or a missing address to the warehouse with its hold still set; only
    # allocated orders are handed over (the hold is lifted with "release hold" first).
    "release": OrderCommand(
        "allocate",
        order_release_to_warehouse,
        "Released to warehouse",
        only_from=frozenset({S.ALLOCATED}),
        refusal="only allocated orders can be released to the warehouse.",
    ),
    "release_hold": OrderCommand("hold", order_hold_release, "Hold released"),
}


# -- the order admin ----------------------------------------------------------------------------


def _tracking_link(carrier_code: str, number: str) -> str:
    try:
        url = tracking_url(carrier_code, number) if number else ""
    except UnknownCarrier:
        url = ""
    if not url:
        return number or "-"
    return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, number)


@admin.register(Order)
class OrderAdmin(BulkActionMixin, admin.ModelAdmin):
    """Manage Orders. Read-only order page; actions and forms call the order services."""

    bulk_noun = "order"

    list_display = (
        "external_id",
        "status_badge",
        "channel",
        "model_code",
        "purchased_at",
        "ship_by_countdown",
        "exception",
        "total_display",
    )
    list_display_links = ("external_id",)
    list_filter = (
        "channel",
        "status",
        "fulfillment_model",
        ShipByFilter,
        HoldReasonFilter,
        WarehouseDeliveryFilter,
        ("purchased_at", PurchaseDateFilter),
    )
    # Declared for the search box; get_search_results applies them without DISTINCT.
    search_fields = (
        "=external_id",
        "^buyer_name",
        "=buyer_email",
        "=lines__seller_sku",
        "=shipments__tracking_number",
    )
    search_help_text = (
        "Channel order id (exact or its start), buyer name (its start), buyer e-mail, "
        "exact SKU, or tracking number."
    )
    list_select_related = ("channel", "warehouse")
    list_per_page = LIST_PER_PAGE
    show_full_result_count = False
    # Facet counts are one aggregate per filter choice: far too slow on millions of rows.
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-purchased_at", "-id")
    # Only indexed columns: sorting millions of rows by anything else is a full sort.
    sortable_by = ("external_id", "purchased_at", "ship_by_countdown")
    paginator = CappedCountPaginator

    class Media:
        css = {"all": ("oms/admin.css",)}

    actions = [
        "allocate_orders",
        "release_orders",
        "cancel_orders",
        "hold_orders",
        "release_holds",
        "print_pick_list",
        "print_packing_slips",
        "export_orders",
    ]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("channel", "external_id"),
                    ("status_badge", "fulfillment_model"),
                    ("exception", "cancel_reason"),
                    ("warehouse", "oversold"),
                    ("is_prime", "service_level"),
                )
            },
        ),
        (
            "Deadlines",
            {
                "fields": (
                    ("purchased_at", "channel_updated_at"),
                    ("ship_by_countdown", "deadline_rule"),
                    ("pack_by", "ship_by"),
                    ("earliest_ship_at", "latest_ship_at", "latest_delivery_at"),
                    "payment_expires_at",
                    ("shipped_at", "delivered_at", "cancelled_at"),
                )
            },
        ),
        ("Buyer", {"fields": (("buyer_name", "buyer_email"), "ship_to")}),
        ("Money", {"fields": (("currency", "total"), ("shipping_total", "tax_total"))}),
    )
    readonly_fields = (
        "channel",
        "external_id",
        "status_badge",
        "fulfillment_model",
        "exception",
        "cancel_reason",
        "warehouse",
        "oversold",
        "is_prime",
        "service_level",
        "purchased_at",
        "channel_updated_at",
        "ship_by_countdown",
        "deadline_rule",
        "pack_by",
        "ship_by",
        "earliest_ship_at",
        "latest_ship_at",
        "latest_delivery_at",
        "payment_expires_at",
        "shipped_at",
        "delivered_at",
        "cancelled_at",
        "buyer_name",
        "buyer_email",
        "ship_to",
        "currency",
        "total",
        "shipping_total",
        "tax_total",
    )

    # -- permissions: orders come from channels and change only through services --

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_allocate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("oms.allocate_order")

    def has_ship_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("oms.ship_order")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("oms.cancel_order")

    def has_hold_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("oms.hold_order")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("oms.export_orders")

    # -- columns --

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Order) -> str:
        return _status_badge(obj)

    @admin.display(description="model", ordering="fulfillment_model")
    def model_code(self, obj: Order) -> str:
        return obj.fulfillment_model

    @admin.display(description="ship-by", ordering="ship_by")
    def ship_by_countdown(self, obj: Order) -> str:
        return _countdown_html(obj, timezone.now())

    @admin.display(description="exception")
    def exception(self, obj: Order) -> str:
        if not obj.hold_reason:
            return "-"
        return format_html(
            '<span class="oms-exception" title="{}">{}</span>',
            obj.hold_detail,
            obj.get_hold_reason_display(),
        )

    @admin.display(description="total", ordering="total")
    def total_display(self, obj: Order) -> str:
        return f"{obj.total} {obj.currency}"

    @admin.display(description="ship to")
    def ship_to(self, obj: Order) -> str:
        city = " ".join(p for p in (obj.ship_city, obj.ship_region, obj.ship_postal_code) if p)
        parts = [
            obj.ship_name,
            obj.ship_line1,
            obj.ship_line2,
            obj.ship_line3,
            city,
            obj.ship_country,
            obj.ship_phone,
        ]
        lines = [(part,) for part in parts if part]
        return format_html_join(mark_safe("<br>"), "{}", lines) if lines else "-"

    # -- changelist --

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return order_list()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """The whole term (not word by word: "Ada Buyer" is one name) against each searched
        field. Each field is its own small indexed query and the order ids are combined with
        UNION: an OR across fields and joins would make PostgreSQL scan every order."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            return queryset.filter(buyer_email__iexact=term), False
        tracking = "".join(ch for ch in term.upper() if ch.isalnum())
        branches = [
            Order.objects.filter(external_id__startswith=term).order_by().values("pk"),
            Order.objects.filter(buyer_name__istartswith=term).order_by().values("pk"),
            OrderLine.objects.filter(seller_sku=term).order_by().values("order_id"),
            OrderLine.objects.filter(sku__code=term).order_by().values("order_id"),
        ]
        if tracking:
            branches.append(
                Shipment.objects.filter(tracking_number=tracking).order_by().values("order_id")
            )
        matching = branches[0].union(*branches[1:])
        return queryset.filter(pk__in=matching), False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        query = request.GET.copy()
        for key in (PAGE_VAR, ALL_VAR):
            query.pop(key, None)
        extra_context = {
            "title": "Manage orders",
            **(extra_context or {}),
            "can_export": self.has_export_permission(request),
            "report_url": reverse("admin:oms_order_report")
            + (f"?{query.urlencode()}" if query else ""),
        }
        return super().changelist_view(request, extra_context)

    # -- order page --

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Order | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self._order_sections(request, obj))
            context["subtitle"] = f"{obj.channel} order {obj.external_id}"
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _order_sections(self, request: HttpRequest, order: Order) -> dict:
        lines = list(order.lines.select_related("sku").order_by("id"))
        shipments = list(
            Shipment.objects.filter(order=order).prefetch_related(
                Prefetch("lines", queryset=ShipmentLine.objects.select_related("order_line"))
            )
        )
        labels = dict(OrderStatus.choices)
        events = [
            {
                "event": event,
                "from": labels.get(event.from_status, event.from_status),
                "to": labels.get(event.to_status, event.to_status),
                "data": json.dumps(event.data, sort_keys=True, default=str) if event.data else "",
            }
            for event in order.events.order_by("created_at", "id")
        ]
        can_map = request.user.has_perm(MapSkuForm.permission)
        return {
            "order": order,
            "order_tools": self._order_tools(request, order),
            "order_lines": [
                {
                    "line": line,
                    "map_url": reverse("admin:oms_order_map_sku", args=[order.pk, line.pk])
                    if can_map and line.sku_id is None and not line.quantity_shipped
                    else "",
                }
                for line in lines
            ],
            "reservations": list(order_reservations(order=order).select_related("stock_level")),
            "shipments": [
                {
                    "shipment": shipment,
                    "tracking": _tracking_link(shipment.carrier_code, shipment.tracking_number),
                    "lines": list(shipment.lines.all()),
                }
                for shipment in shipments
            ],
            "payloads": [
                {"version": version, "json": json.dumps(version.payload, indent=2, default=str)}
                for version in OrderPayloadVersion.objects.filter(order=order).order_by(
                    "-received_at", "-id"
                )
            ],
            "warehouse_requests": _warehouse_requests(order),
            "events": events,
            "countdown": _countdown_html(order, timezone.now()),
        }

    def _order_tools(self, request: HttpRequest, order: Order) -> list[dict]:
        """The buttons on the order page: those the user may use and the status allows."""
        user, status = request.user, order.status
        pk = order.pk
        tools = []
        # FBA orders ship from Amazon's warehouse; the channel reports that shipment.
        shippable = status in TO_SHIP_STATUSES and order.fulfillment_model != FulfillmentModel.FBA
        if user.has_perm(ShipForm.permission) and shippable:
            tools.append({"label": "Ship", "url": reverse("admin:oms_order_ship", args=[pk])})
        if self.has_allocate_permission(request):
            if status in (S.AWAITING_FULFILLMENT, S.PENDING):
                tools.append(_command_tool("Allocate", pk, "allocate"))
            if status == S.ALLOCATED:
                tools.append(_command_tool("Release to warehouse", pk, "release"))
        if self.has_hold_permission(request):
            if status == S.ON_HOLD:
                tools.append(_command_tool("Release hold", pk, "release_hold"))
            # Open orders only: a cancelled order goes on hold when a warehouse reports it
            # shipped anyway, which is the channel sync's to record, not staff's.
            if status in OPEN_STATUSES:
                label = "Change hold reason" if status == S.ON_HOLD else "Hold"
                tools.append({"label": label, "url": reverse("admin:oms_order_hold", args=[pk])})
        if user.has_perm(AddressForm.permission) and order_address_editable(order):
            tools.append(
                {"label": "Change address", "url": reverse("admin:oms_order_address", args=[pk])}
            )
        if self.has_cancel_permission(request) and S.CANCELLED in TRANSITIONS[status]:
            tools.append({"label": "Cancel", "url": reverse("admin:oms_order_cancel", args=[pk])})
        return tools

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("report.csv", wrap(self.report_view), name="oms_order_report"),
            path(
                "<path:object_id>/ship/",
                wrap(self.form_view),
                {"form_class": ShipForm},
                name="oms_order_ship",
            ),
            path(
                "<path:object_id>/cancel/",
                wrap(self.form_view),
                {"form_class": CancelForm},
                name="oms_order_cancel",
            ),
            path(
                "<path:object_id>/hold/",
                wrap(self.form_view),
                {"form_class": HoldForm},
                name="oms_order_hold",
            ),
            path(
                "<path:object_id>/address/",
                wrap(self.form_view),
                {"form_class": AddressForm},
                name="oms_order_address",
            ),
            path(
                "<path:object_id>/lines/<int:line_id>/map-sku/",
                wrap(self.form_view),
                {"form_class": MapSkuForm},
                name="oms_order_map_sku",
            ),
            path(
                "<path:object_id>/command/<slug:verb>/",
                wrap(require_POST(self.command_view)),
                name="oms_order_command",
            ),
            *super().get_urls(),
        ]

    def _order_or_404(self, request: HttpRequest, object_id: str) -> Order:
        order = self.get_object(request, unquote(object_id))
        if order is None:
            raise Http404(f"No order with id {object_id!r}.")
        if not self.has_view_permission(request, order):
            raise PermissionDenied
        return order

    def form_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_class: type[OrderActionForm],
        line_id: int | None = None,
    ) -> HttpResponse:
        """One order form (ship, cancel, hold, change address, map SKU): on a refusal the form
        is shown again with what was typed and the service's message; nothing has changed."""
        if not request.user.has_perm(form_class.permission):
            raise PermissionDenied
        order = self._order_or_404(request, object_id)
        line = get_object_or_404(OrderLine, pk=line_id, order=order) if line_id else None
        kwargs = {"order": order, "line": line}
        if request.method == "POST":
            form = form_class(request.POST, **kwargs)
            if form.is_valid():
                try:
                    after = form.execute(order=order, actor=request.user)
                except DomainError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"{form_class.done}: order {after.external_id} is now "
                        f"{after.get_status_display()}.",
                        messages.SUCCESS,
                    )
                    return redirect("admin:oms_order_change", order.pk)
        else:
            form = form_class(**kwargs)
        title = form_class.title + (f" line {line.seller_sku}" if line else "")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{title}: {order.external_id}",
            "order": order,
            "line": line,
            "form": form,
            "submit_label": form_class.title,
            "status_badge": _status_badge(order),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/oms/order/order_form.html", context)

    def command_view(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponse:
        """The one-click order actions (allocate, release to warehouse, release hold)."""
        command = ORDER_COMMANDS.get(verb)
        if command is None:
            raise Http404(f"No order command {verb!r}.")
        if not getattr(self, f"has_{command.permission}_permission")(request):
            raise PermissionDenied
        order = self._order_or_404(request, object_id)
        try:
            if refusal := command.refused(order):
                raise OrderError(refusal, code="not_allowed_here")
            after = command.service(order=order, actor=request.user)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            level = messages.WARNING if _held_instead(after, verb) else messages.SUCCESS
            self.message_user(
                request,
                f"{command.done}: order {after.external_id} is now {after.get_status_display()}"
                + (f" ({after.get_hold_reason_display()})" if after.hold_reason else "")
                + ".",
                level,
            )
        return redirect("admin:oms_order_change", order.pk)

    def report_view(self, request: HttpRequest) -> HttpResponseBase:
        """The order report (CSV) of whatever the changelist shows under the same filters and
        search, every page of it, streamed."""
        if not (self.has_view_permission(request) and self.has_export_permission(request)):
            raise PermissionDenied
        request.GET = request.GET.copy()
        for key in (PAGE_VAR, ALL_VAR):
            request.GET.pop(key, None)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(request, "The report's filters are not valid.", messages.ERROR)
            return redirect("admin:oms_order_changelist")
        return order_report_response(changelist.queryset, filename=_filename("order-report", "csv"))

    # -- bulk actions --

    def _run(
        self,
        request: HttpRequest,
        orders: list[Order],
        call: Callable[[Order], Order],
        *,
        done: str,
        verb: str,
    ) -> None:
        succeeded, held, failed = 0, [], []
        for order in orders:
            try:
                after = call(order)
            except DomainError as exc:
                failed.append(f"Order {order.external_id}: {exc.message}")
                continue
            if _held_instead(after, verb):
                held.append(f"{after.external_id} ({after.get_hold_reason_display()})")
            else:
                succeeded += 1
        if succeeded:
            self.message_user(request, f"{done}: {succeeded} order(s).", messages.SUCCESS)
        if held:
            self.message_user(
                request,
                f"{len(held)} order(s) went on hold instead: {_listing(held)}.",
                messages.WARNING,
            )
        self._report_refusals(request, failed)

    def _command(self, request: HttpRequest, queryset: QuerySet, verb: str) -> None:
        orders = self._selection(request, queryset)
        if orders is None:
            return
        command = ORDER_COMMANDS[verb]

        def call(order: Order) -> Order:
            if refusal := command.refused(order):
                raise OrderError(refusal, code="not_allowed_here")
            return command.service(order=order, actor=request.user)

        self._run(request, orders, call, done=command.done, verb=verb)

    def _with_form(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        form_class: type[OrderActionForm],
        action: str,
    ) -> TemplateResponse | None:
        """An action that needs input: the first post shows the form for the selection, the
        second (with ``apply``) runs the service for each order."""
        orders = self._selection(request, queryset)
        if orders is None:
            return None
        if "apply" in request.POST:
            form = form_class(request.POST)
            if form.is_valid():

                def call(order: Order) -> Order:
                    return form.execute(order=order, actor=request.user)

                self._run(request, orders, call, done=form_class.done, verb=form_class.verb)
                return None
        else:
            form = form_class()
        return self._bulk_form_response(
            request,
            title=f"{form_class.title}: {len(orders)} order(s)",
            selection=[
                (o.pk, o.external_id, f"{o.channel}, {o.get_status_display()}") for o in orders
            ],
            form=form,
            action=action,
            submit_label=form_class.title,
        )

    @admin.action(description="Allocate selected orders", permissions=["allocate"])
    def allocate_orders(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._command(request, queryset, "allocate")

    @admin.action(description="Release selected orders to the warehouse", permissions=["allocate"])
    def release_orders(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._command(request, queryset, "release")

    @admin.action(description="Cancel selected orders (with a reason)", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        return self._with_form(request, queryset, CancelForm, "cancel_orders")

    @admin.action(description="Put selected orders on hold", permissions=["hold"])
    def hold_orders(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        return self._with_form(request, queryset, HoldForm, "hold_orders")

    @admin.action(description="Release the holds of selected orders", permissions=["hold"])
    def release_holds(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._command(request, queryset, "release_hold")

    @admin.action(description="Print pick list (PDF)", permissions=["ship"])
    def print_pick_list(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if self._selection(request, queryset) is None:
            return None
        content = pick_list_pdf(pick_list_build(queryset))
        return _download(content, "application/pdf", _filename("pick-list", "pdf"))

    @admin.action(description="Print packing slips (PDF)", permissions=["ship"])
    def print_packing_slips(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if self._selection(request, queryset) is None:
            return None
        content = packing_slips_pdf(queryset)
        return _download(content, "application/pdf", _filename("packing-slips", "pdf"))

    @admin.action(description="Export selected orders (CSV order report)", permissions=["export"])
    def export_orders(self, request: HttpRequest, queryset: QuerySet) -> HttpResponseBase:
        return order_report_response(queryset, filename=_filename("orders", "csv"))


def _warehouse_requests(order: Order) -> list:
    """Each message sent (or still to send) to the order's API warehouse and how it went.
    They belong to ``channels_app``, which depends on this app: looked up by name."""
    if not apps.is_installed("channels_app"):
        return []
    model = apps.get_model("channels_app", "FulfillmentRequest")
    return list(
        model.objects.filter(order=order).select_related("warehouse").order_by("created_at", "id")
    )


def _command_tool(label: str, pk: int, verb: str) -> dict:
    return {
        "label": label,
        "url": reverse("admin:oms_order_command", args=[pk, verb]),
        "post": True,
    }


def _held_instead(order: Order, verb: str) -> bool:
    # Allocating or releasing a hold may end on hold again (no stock, unknown SKU): that is
    # not the success the user asked for, so it is reported apart.
    return verb != "hold" and order.status == S.ON_HOLD


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_MESSAGES])
    return shown + (f" and {len(items) - MAX_MESSAGES} more" if len(items) > MAX_MESSAGES else "")


def _filename(stem: str, extension: str) -> str:
    return f"{stem}-{timezone.now():%Y%m%d-%H%M%S}.{extension}"


def _download(content: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# -- channels and alerts ------------------------------------------------------------------------


class RoutingRuleInline(admin.TabularInline):
    model = RoutingRule
    extra = 1
    autocomplete_fields = ("warehouse",)
    verbose_name = "routing rule"
    verbose_name_plural = "routing: warehouses for FBM/SFP orders, lowest priority first"


@admin.register(SalesChannel)
class SalesChannelAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "kind",
        "marketplace",
        "default_fulfillment_model",
        "handling_days",
        "allow_split_shipments",
        "is_enabled",
    )
    list_filter = ("kind", "is_enabled")
    search_fields = ("code", "name")
    inlines = [RoutingRuleInline]


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(DeadlineAlert)
class DeadlineAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Orders that will miss (or missed) a pack-by or ship-by; raised by the alert task."""

    list_display = (
        "order_link",
        "channel",
        "kind",
        "due_at",
        "raised_at",
        "emailed_to",
        "resolved_at",
    )
    list_filter = (
        "kind",
        AlertStateFilter,
        "order__channel",
        ("due_at", admin.DateFieldListFilter),
    )
    search_fields = ("=order__external_id",)
    search_help_text = "Exact channel order id."
    list_select_related = ("order", "order__channel")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = LIST_PER_PAGE

    @admin.display(description="order", ordering="order")
    def order_link(self, obj: DeadlineAlert) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:oms_order_change", args=[obj.order_id]),
            obj.order.external_id,
        )

    @admin.display(description="channel")
    def channel(self, obj: DeadlineAlert) -> str:
        return str(obj.order.channel)


from oms import admin_health  # noqa: E402,F401  (account health admin; registers itself)

admin.site.site_header = "Order management back office"
admin.site.site_title = "Back office"
admin.site.index_title = "Operations"
# The tables here are wide (badges, countdowns, health); the app list is on the front page.
admin.site.enable_nav_sidebar = False
