"""Account health in the admin: defects entered by staff (through the defect service),
editable thresholds, and read-only snapshots, alerts, report checks and FBA figures. Also
serves the front-page dashboard's data and its links to the orders behind each figure.

Imported at the bottom of ``oms.admin``.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import path, reverse
from django.utils.html import format_html

from inventory.exceptions import DomainError
from oms.dashboard import dashboard_data_view, health_orders_view
from oms.health.metrics import SPECS, Threshold
from oms.health.services import order_defect_record, order_defect_remove
from oms.models import (
    FbaInventoryFigure,
    HealthAlert,
    HealthReportCheck,
    MetricSnapshot,
    MetricThreshold,
    OrderDefect,
)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows the health check writes: looked at, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


class OrderDefectForm(forms.ModelForm):
    class Meta:
        model = OrderDefect
        fields = ["order", "kind", "opened_at", "external_id", "note"]

    def clean(self):
        cleaned = super().clean()
        order, opened_at = cleaned.get("order"), cleaned.get("opened_at")
        if order and opened_at and opened_at < order.purchased_at:
            self.add_error("opened_at", "A claim or feedback cannot predate the order.")
        return cleaned


@admin.register(OrderDefect)
class OrderDefectAdmin(admin.ModelAdmin):
    """Staff enter claims, chargebacks and negative feedback the channel does not send us;
    they count in the order defect rate until marked as no longer counting."""

    form = OrderDefectForm
    list_display = (
        "order",
        "kind",
        "source",
        "channel_status",
        "opened_at",
        "counts",
        "created_by",
    )
    list_filter = ("kind", "source", ("removed_at", admin.EmptyFieldListFilter))
    list_select_related = ("order", "order__channel", "created_by")
    raw_id_fields = ("order",)
    search_fields = ("=order__external_id", "=external_id")
    date_hierarchy = "opened_at"
    actions = ["stop_counting"]
    show_full_result_count = False

    @admin.display(boolean=True, description="counts")
    def counts(self, obj: OrderDefect) -> bool:
        return obj.removed_at is None

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ("source",)
        return (
            "order", "kind", "opened_at", "source", "external_id", "channel_status", "note",
            "removed_at", "raw_payload", "created_by", "created_at",
        )  # fmt: skip

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ["order", "kind", "opened_at", "external_id", "note"]
        return list(self.get_readonly_fields(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: OrderDefect, form, change: bool) -> None:
        if change:
            return
        defect = order_defect_record(
            order=obj.order,
            kind=obj.kind,
            opened_at=obj.opened_at,
            source=OrderDefect.Source.STAFF,
            external_id=obj.external_id,
            note=obj.note,
            actor=request.user,
        )
        obj.pk = defect.pk

    @admin.action(description="Stop counting (claim denied or feedback removed)")
    def stop_counting(self, request: HttpRequest, queryset: QuerySet) -> None:
        stopped = 0
        for defect in queryset.filter(removed_at__isnull=True).select_related("order"):
            try:
                order_defect_remove(defect=defect, actor=request.user)
            except DomainError as err:
                messages.error(request, f"{defect.order}: {err}")
                continue
            stopped += 1
        messages.success(request, f"{stopped} defect(s) no longer count.")


@admin.register(MetricThreshold)
class MetricThresholdAdmin(admin.ModelAdmin):
    """Each metric's threshold per program (and optionally per channel) and its alert level."""

    list_display = (
        "metric", "program", "channel", "threshold", "comparison", "warn_headroom",
        "alert_email", "reads_as",
    )  # fmt: skip
    list_editable = ("threshold", "comparison", "warn_headroom", "alert_email")
    list_filter = ("metric", "program", "channel")
    list_select_related = ("channel",)

    @admin.display(description="reads as")
    def reads_as(self, obj: MetricThreshold) -> str:
        if obj.threshold is None or not obj.comparison:
            return "-"
        return Threshold(obj.threshold, obj.comparison).text


@admin.register(MetricSnapshot)
class MetricSnapshotAdmin(ViewOnlyAdmin):
    """Daily figures per metric, channel and program (today's row is the live one). Also
    serves the dashboard's data and its order links."""

    list_display = (
        "day", "channel", "program", "metric", "rate", "numerator", "denominator",
        "threshold", "status", "headroom", "at_risk", "against_link",
    )  # fmt: skip
    list_filter = ("metric", "program", "channel", "status")
    list_select_related = ("channel",)
    date_hierarchy = "day"
    show_full_result_count = False

    @admin.display(description="rate", ordering="value")
    def rate(self, obj: MetricSnapshot) -> str:
        if obj.metric not in SPECS:
            return "-" if obj.value is None else f"{obj.value:g}"
        return _percent(obj.value)

    @admin.display(description="orders")
    def against_link(self, obj: MetricSnapshot) -> str:
        if obj.metric not in SPECS:
            return "-"
        url = reverse("admin:oms_health_orders") + (
            f"?list=against&metric={obj.metric}&channel={obj.channel_id}&program={obj.program}"
        )
        return format_html('<a href="{}">counting against it now</a>', url)

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "dashboard-data/",
                site.admin_view(dashboard_data_view),
                name="oms_health_dashboard_data",
            ),
            path("orders/", site.admin_view(health_orders_view), name="oms_health_orders"),
            *super().get_urls(),
        ]


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(HealthAlert)
class HealthAlertAdmin(ViewOnlyAdmin):
    list_display = (
        "raised_at", "channel", "program", "metric", "level", "crossing", "rate", "headroom",
        "message", "emailed_to", "resolved_at",
    )  # fmt: skip
    list_filter = (AlertStateFilter, "level", "metric", "program", "channel")
    list_select_related = ("channel",)
    date_hierarchy = "raised_at"

    @admin.display(description="rate", ordering="value")
    def rate(self, obj: HealthAlert) -> str:
        return _percent(obj.value)


@admin.register(HealthReportCheck)
class HealthReportCheckAdmin(ViewOnlyAdmin):
    """Our figures beside the channel's own report, over the channel's reporting range."""

    list_display = (
        "checked_at", "channel", "metric", "fulfillment", "date_from", "date_to", "ours",
        "theirs", "difference_display", "their_status",
    )  # fmt: skip
    list_filter = ("metric", "fulfillment", "channel")
    list_select_related = ("channel",)
    date_hierarchy = "checked_at"

    @admin.display(description="ours")
    def ours(self, obj: HealthReportCheck) -> str:
        return f"{_percent(obj.our_value)} ({obj.our_numerator}/{obj.our_denominator})"

    @admin.display(description="channel's")
    def theirs(self, obj: HealthReportCheck) -> str:
        return f"{_percent(obj.their_value)} ({obj.their_numerator}/{obj.their_denominator})"

    @admin.display(description="difference")
    def difference_display(self, obj: HealthReportCheck) -> str:
        diff = obj.difference
        if diff is None:
            return "-"
        counts = (obj.our_numerator or 0) - (obj.their_numerator or 0)
        return f"{diff * 100:+.2f} pt ({counts:+d})"


@admin.register(FbaInventoryFigure)
class FbaInventoryFigureAdmin(ViewOnlyAdmin):
    list_display = (
        "channel", "seller_sku", "sku", "fulfillable", "inbound", "reserved", "unfulfillable",
        "listed", "stranded", "refreshed_at",
    )  # fmt: skip
    list_filter = ("channel", "listed")
    list_select_related = ("channel", "sku")
    search_fields = ("=seller_sku",)

    @admin.display(description="stranded")
    def stranded(self, obj: FbaInventoryFigure) -> int:
        return obj.stranded
