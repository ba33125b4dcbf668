"""Channels in the Django admin: connections, listings, the push queue and what happened.

The admin only shows and asks. Every write goes through ``channels_app.services`` (testing a
connection, importing orders, retrying an import error or a failed push, pushing a quantity
now); a ``ConnectorError`` or ``DomainError`` comes back as an error message naming the row,
and each row is handled on its own, so one failure never hides the others. What the
integration recorded (sync log, push log, webhook events, import errors, drift) is read-only.

Credentials are never shown back: the channel page shows ``credentials_masked()`` and takes
new values through a write-only field (``channels_app.forms``). Changelists select their
related rows up front, skip the full count and compute the channel backlog with subqueries,
so each page costs a fixed number of queries however many rows it shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from channels_app.connectors.base import ConnectorError
from channels_app.forms import ChannelAdminForm
from channels_app.models import (
    Channel,
    DriftRecord,
    FulfillmentRequest,
    InboundEvent,
    Listing,
    OrderImportError,
    PendingPush,
    PushLog,
    StockSnapshot,
    StockSnapshotLine,
    SyncLog,
    WarehouseConnection,
    WebhookEvent,
)
from channels_app.services.connection import channel_test_connection
from channels_app.services.defects import DEFECT_ERROR_PREFIX
from channels_app.services.fulfillment import fulfillment_request_send
from channels_app.services.imports import channel_orders_import, import_error_retry
from channels_app.services.policy import listing_quantity_explain, listings_for_skus
from channels_app.services.sync import channel_listings_refresh, listings_refresh, push_retry
from inventory.exceptions import DomainError
from oms.admin import ReadOnlyAdminMixin, RoutingRuleInline
from oms.models import Order, OrderDefect, Shipment

LIST_PER_PAGE = 100
# Actions that call a channel or a service per row load the selection; beyond this the
# request would run for minutes, so the action refuses and asks for a narrower filter.
MAX_SELECTION = 500
# Per-row messages after an action; the rest are summed up in one more message.
MAX_MESSAGES = 20
RECENT_PUSHES = 20
POLICY_FIELDS = (
    "safety_buffer",
    "percent_shown",
    "min_shown",
    "max_shown",
    "zero_at_or_below",
    "last_units_threshold",
)
CHANNEL_POLICY_FIELDS = (
    *POLICY_FIELDS,
    "velocity_buffer",
    "push_delay_seconds",
    "safe_for_last_units",
    "is_enabled",
)


class ChannelsMedia:
    """The order admin's stylesheet (badges, object-tool buttons, sections) for these pages."""

    class Media:
        css = {"all": ("oms/admin.css",)}


# -- small display helpers --------------------------------------------------------------------


def badge(text: str, tone: str) -> str:
    """A coloured label; ``tone`` is ``ok``, ``error``, ``warn``, ``info`` or ``muted``."""
    return format_html('<span class="oms-badge channels-tone-{}">{}</span>', tone, text)


def shortened(text: str, length: int = 80) -> str:
    """The start of a long text, the whole of it on hover."""
    if not text:
        return "-"
    return format_html(
        '<span title="{}">{}</span>', text, Truncator(text).chars(length, truncate="…")
    )


def changelist_url(model: type, **params: Any) -> str:
    url = reverse(f"admin:channels_app_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def change_link(obj: Any, text: str | None = None) -> str:
    url = reverse(f"admin:channels_app_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text if text is not None else str(obj))


def pretty_json(value: Any) -> str:
    return format_html(
        '<pre class="channels-json">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str),
    )


def count_of(queryset: QuerySet, group_by: str) -> Coalesce:
    """``COUNT(*)`` of ``queryset`` (already filtered on ``OuterRef``) as a subquery column."""
    counted = queryset.order_by().values(group_by).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _tool(label: str, url: str, *, post: bool = False) -> dict:
    return {"label": label, "url": url, "post": post}


class ChannelsAdmin(ChannelsMedia, admin.ModelAdmin):
    """Common settings: fast changelists and messages capped per action."""

    show_full_result_count = False
    # Facet counts are one aggregate per filter choice: too slow on large tables.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = LIST_PER_PAGE

    def _selection(self, request: HttpRequest, queryset: QuerySet) -> list | None:
        rows = list(queryset[: MAX_SELECTION + 1])
        if len(rows) > MAX_SELECTION:
            self.message_user(
                request,
                f"More than {MAX_SELECTION} rows selected: nothing was done. Filter the list "
                "further and select again.",
                messages.ERROR,
            )
            return None
        return rows

    def _report(self, request: HttpRequest, items: list[tuple[str, int]]) -> None:
        """Show ``(message, level)`` pairs, the first ``MAX_MESSAGES`` of them one by one."""
        for text, level in items[:MAX_MESSAGES]:
            self.message_user(request, text, level)
        rest = items[MAX_MESSAGES:]
        if rest:
            errors = sum(1 for _, level in rest if level == messages.ERROR)
            self.message_user(
                request,
                f"{len(rest)} more row(s) done, {errors} of them with an error.",
                messages.ERROR if errors else messages.INFO,
            )

    def _object_or_404(self, request: HttpRequest, object_id: str) -> Any:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        context["object_tools"] = self.object_tools(request, obj) if obj is not None else []
        return super().render_change_form(request, context, add, change, form_url, obj)

    def object_tools(self, request: HttpRequest, obj: Any) -> list[dict]:
        """Buttons and links shown above the change page (``post`` ones are forms)."""
        return []


class OpenResolvedFilter(admin.SimpleListFilter):
    """Open rows (``<field>`` empty) or closed ones; ``field`` names the closing timestamp."""

    title = "state"
    parameter_name = "state"
    field = "resolved_at"
    labels = ("Open", "Resolved")

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("open", self.labels[0]), ("closed", self.labels[1])]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "open":
            return queryset.filter(**{f"{self.field}__isnull": True})
        if self.value() == "closed":
            return queryset.filter(**{f"{self.field}__isnull": False})
        return queryset


# -- channel connections ----------------------------------------------------------------------


def channel_health(channel: Channel) -> tuple[str, str]:
    """``(tone, text)``: failing when the last error is newer than the last success."""
    if channel.last_error_at and (
        channel.last_success_at is None or channel.last_error_at > channel.last_success_at
    ):
        return "error", "failing"
    if channel.last_success_at:
        return "ok", "ok"
    return "muted", "never synced"


class HealthFilter(admin.SimpleListFilter):
    title = "sync health"
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("failing", "Failing"), ("ok", "OK"), ("never", "Never synced")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        failing = Q(last_error_at__isnull=False) & (
            Q(last_success_at__isnull=True) | Q(last_error_at__gt=F("last_success_at"))
        )
        if self.value() == "failing":
            return queryset.filter(failing)
        if self.value() == "ok":
            return queryset.filter(last_success_at__isnull=False).exclude(failing)
        if self.value() == "never":
            return queryset.filter(last_success_at__isnull=True, last_error_at__isnull=True)
        return queryset


@admin.register(Channel)
class ChannelAdmin(ChannelsAdmin):
    """Channel connections: settings, write-only credentials, health and backlog."""

    form = ChannelAdminForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = [RoutingRuleInline]
    list_display = (
        "code",
        "name",
        "kind",
        "is_enabled",
        "health",
        "last_success_at",
        "last_error_short",
        "push_backlog",
        "confirmations",
        "import_errors",
    )
    list_filter = ("kind", "is_enabled", HealthFilter)
    search_fields = ("code", "name")
    actions = ["test_connection", "import_orders_now"]
    readonly_fields = (
        "stored_credentials",
        "health",
        "last_success_at",
        "last_error_at",
        "last_error",
        "last_polled_at",
        "orders_cursor",
        "returns_cursor",
        "push_backlog",
        "confirmations",
        "import_errors",
    )
    fieldsets = (
        (None, {"fields": (("code", "kind"), "name", "marketplace", "is_enabled")}),
        (
            "Connection",
            {
                "fields": (
                    "base_url",
                    "stored_credentials",
                    "new_credentials",
                    "settings_json",
                    "poll_interval_seconds",
                    ("rate_per_second", "burst"),
                )
            },
        ),
        (
            "Orders",
            {
                "fields": (
                    "default_fulfillment_model",
                    "handling_days",
                    "allow_split_shipments",
                    "fba_warehouse",
                )
            },
        ),
        (
            "Quantity policy",
            {
                "description": "What share of available stock this channel shows. Each "
                "listing may override these; use a listing's Explain quantity page to see "
                "which rule decided its number.",
                "fields": (
                    "safety_buffer",
                    "percent_shown",
                    ("min_shown", "max_shown"),
                    "zero_at_or_below",
                    ("last_units_threshold", "safe_for_last_units"),
                    ("velocity_buffer", "push_delay_seconds"),
                ),
            },
        ),
        (
            "Sync health",
            {
                "fields": (
                    ("health", "last_success_at"),
                    "last_error_at",
                    "last_error",
                    ("last_polled_at", "orders_cursor", "returns_cursor"),
                    ("push_backlog", "confirmations", "import_errors"),
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        failed = PendingPush.State.FAILED
        pushes = PendingPush.objects.filter(channel=OuterRef("pk"))
        shipments = Shipment.objects.filter(order__channel=OuterRef("pk"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                pushes_waiting=count_of(pushes.exclude(state=failed), "channel"),
                pushes_failed=count_of(pushes.filter(state=failed), "channel"),
                confirmations_waiting=count_of(
                    shipments.filter(confirmation_status=Shipment.Confirmation.PENDING),
                    "order__channel",
                ),
                confirmations_failed=count_of(
                    shipments.filter(confirmation_status=Shipment.Confirmation.FAILED),
                    "order__channel",
                ),
                import_errors_open=count_of(
                    OrderImportError.objects.filter(
                        channel=OuterRef("pk"), resolved_at__isnull=True
                    ),
                    "channel",
                ),
            )
        )

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        policy = set(CHANNEL_POLICY_FIELDS) & set(form.changed_data)
        if change and policy and obj.is_enabled:
            channel_listings_refresh(channel=obj)
            changed = ", ".join(sorted(policy))
            self.message_user(request, f"Quantity policy changed ({changed}): listings re-pushed.")

    def get_fieldsets(self, request: HttpRequest, obj: Channel | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:  # nothing has synced yet
            return [fs for fs in fieldsets if fs[0] != "Sync health"]
        return fieldsets

    # -- columns --

    @admin.display(description="health")
    def health(self, obj: Channel) -> str:
        return badge(*reversed(channel_health(obj)))

    @admin.display(description="last error", ordering="last_error_at")
    def last_error_short(self, obj: Channel) -> str:
        return shortened(obj.last_error)

    @admin.display(description="push backlog", ordering="pushes_waiting")
    def push_backlog(self, obj: Channel) -> str:
        waiting, failed = getattr(obj, "pushes_waiting", 0), getattr(obj, "pushes_failed", 0)
        url = changelist_url(PendingPush, channel__saleschannel_ptr__exact=obj.pk)
        parts = [format_html('<a href="{}">{} waiting</a>', url, waiting)]
        if failed:
            parts.append(
                format_html(
                    '<a href="{}" class="channels-failed">{} failed</a>',
                    changelist_url(
                        PendingPush,
                        channel__saleschannel_ptr__exact=obj.pk,
                        state=PendingPush.State.FAILED,
                    ),
                    failed,
                )
            )
        return format_html_join(", ", "{}", ((p,) for p in parts))

    @admin.display(description="confirmations", ordering="confirmations_waiting")
    def confirmations(self, obj: Channel) -> str:
        waiting = getattr(obj, "confirmations_waiting", 0)
        failed = getattr(obj, "confirmations_failed", 0)
        if failed:
            return format_html(
                '{} waiting, <span class="channels-failed">{} failed</span>', waiting, failed
            )
        return f"{waiting} waiting"

    @admin.display(description="import errors", ordering="import_errors_open")
    def import_errors(self, obj: Channel) -> str:
        count = getattr(obj, "import_errors_open", 0)
        url = changelist_url(
            OrderImportError, channel__saleschannel_ptr__exact=obj.pk, state="open"
        )
        css = "channels-failed" if count else ""
        return format_html('<a href="{}" class="{}">{} open</a>', url, css, count)

    @admin.display(description="stored credentials")
    def stored_credentials(self, obj: Channel) -> str:
        if obj is None or not obj.pk:
            return "-"
        try:
            masked = obj.credentials_masked()
        except DomainError as err:
            return format_html('<span class="oms-error">{}</span>', err.message)
        if not masked:
            return "none stored"
        return format_html_join(
            "", '<div class="channels-credential"><code>{}</code> {}</div>', masked.items()
        )

    # -- actions and buttons --

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet) -> None:
        channels = self._selection(request, queryset)
        if channels is not None:
            self._report(request, [self._test(channel) for channel in channels])

    @admin.action(description="Import orders now", permissions=["change"])
    def import_orders_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        channels = self._selection(request, queryset)
        if channels is not None:
            self._report(request, [self._import(channel) for channel in channels])

    @staticmethod
    def _test(channel: Channel) -> tuple[str, int]:
        try:
            answer = channel_test_connection(channel=channel)
        except (ConnectorError, DomainError) as err:
            return f"{channel.code}: connection failed: {err}", messages.ERROR
        return f"{channel.code}: connection OK. {answer}", messages.SUCCESS

    @staticmethod
    def _import(channel: Channel) -> tuple[str, int]:
        try:
            summary = channel_orders_import(channel=channel)
        except (ConnectorError, DomainError) as err:
            return (
                f"{channel.code}: import stopped: {err}. Orders imported before the error are "
                "kept; the next poll resumes from the same point.",
                messages.ERROR,
            )
        text = (
            f"{channel.code}: {summary.seen} order(s) read: {summary.created} new, "
            f"{summary.updated} updated, {summary.unchanged} unchanged, {summary.failed} failed."
        )
        if not summary.failed:
            return text, messages.SUCCESS
        url = changelist_url(
            OrderImportError, channel__saleschannel_ptr__exact=channel.pk, state="open"
        )
        return format_html(
            '{} <a href="{}">See the import errors.</a>', text, url
        ), messages.WARNING

    def object_tools(self, request: HttpRequest, obj: Channel) -> list[dict]:
        tools = []
        if self.has_change_permission(request, obj):
            tools += [
                _tool(
                    "Test connection",
                    reverse("admin:channels_app_channel_test_connection", args=[obj.pk]),
                    post=True,
                ),
                _tool(
                    "Import orders now",
                    reverse("admin:channels_app_channel_import_orders", args=[obj.pk]),
                    post=True,
                ),
            ]
        by_channel = {"channel__saleschannel_ptr__exact": obj.pk}
        tools += [
            _tool("Listings", changelist_url(Listing, **by_channel)),
            _tool("Sync log", changelist_url(SyncLog, **by_channel)),
            _tool("Pending pushes", changelist_url(PendingPush, **by_channel)),
            _tool("Import errors", changelist_url(OrderImportError, state="open", **by_channel)),
        ]
        return tools

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/test-connection/",
                wrap(require_POST(self.button_view)),
                {"call": self._test},
                name="channels_app_channel_test_connection",
            ),
            path(
                "<path:object_id>/import-orders/",
                wrap(require_POST(self.button_view)),
                {"call": self._import},
                name="channels_app_channel_import_orders",
            ),
            *super().get_urls(),
        ]

    def button_view(
        self, request: HttpRequest, object_id: str, call: Callable[[Channel], tuple[str, int]]
    ) -> HttpResponse:
        channel = self._object_or_404(request, object_id)
        if not self.has_change_permission(request, channel):
            raise PermissionDenied
        self._report(request, [call(channel)])
        return redirect("admin:channels_app_channel_change", channel.pk)


# -- listings ---------------------------------------------------------------------------------


PUSH_STATE_TONES = {
    PendingPush.State.PENDING: ("pending", "info"),
    PendingPush.State.IN_FLIGHT: ("sending", "info"),
    PendingPush.State.FAILED: ("failed", "error"),
}


PUSH_LOG_TONES = {
    PushLog.State.PENDING: "info",
    PushLog.State.SENT: "ok",
    PushLog.State.SUPERSEDED: "muted",
    PushLog.State.ERROR: "error",
    PushLog.State.SKIPPED: "muted",
}


class PushStateFilter(admin.SimpleListFilter):
    title = "pending push"
    parameter_name = "push"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("none", "Nothing to send"), *PendingPush.State.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "none":
            return queryset.filter(pending_push__isnull=True)
        if value in PendingPush.State.values:
            return queryset.filter(pending_push__state=value)
        return queryset


def push_state_html(push: PendingPush | None) -> str:
    if push is None:
        return "-"
    text, tone = PUSH_STATE_TONES.get(push.state, (push.state, "muted"))
    return change_link(push, badge(f"{text} → {push.quantity}", tone))


@admin.register(Listing)
class ListingAdmin(ChannelsAdmin):
    """Listings: identifiers, price and policy overrides are edited here; the quantity is
    computed (see Explain quantity) and pushed by the sync engine."""

    list_display = (
        "seller_sku",
        "channel",
        "our_sku",
        "fulfillment_model",
        "price",
        "last_pushed_quantity",
        "last_pushed_at",
        "push_state",
        "state",
        "explain_link",
    )
    list_filter = ("channel", "fulfillment_model", "state", PushStateFilter)
    search_fields = ("^seller_sku", "^sku__code", "=asin")
    search_help_text = "Start of the seller SKU or of our SKU, or an exact ASIN."
    list_select_related = ("channel", "sku", "pending_push")
    autocomplete_fields = ("channel", "sku")
    actions = ["push_quantity_now"]
    readonly_fields = (
        "last_pushed_quantity",
        "last_pushed_price",
        "last_pushed_handling_days",
        "last_pushed_at",
        "push_state",
        "explain_link",
        "recent_pushes",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "channel",
                    "sku",
                    "seller_sku",
                    ("asin", "channel_listing_id"),
                    "fulfillment_model",
                    ("price", "handling_days"),
                    "state",
                )
            },
        ),
        (
            "Quantity policy overrides",
            {
                "description": "Blank uses the channel's value.",
                "fields": (
                    "safety_buffer",
                    "percent_shown",
                    ("min_shown", "max_shown"),
                    "zero_at_or_below",
                    "last_units_threshold",
                ),
            },
        ),
        (
            "Last pushed",
            {
                "fields": (
                    ("last_pushed_quantity", "last_pushed_at"),
                    ("last_pushed_price", "last_pushed_handling_days"),
                    ("push_state", "explain_link"),
                )
            },
        ),
        (f"Push log (latest {RECENT_PUSHES})", {"fields": ("recent_pushes",)}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Listing | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:  # nothing pushed yet
            return fieldsets[:2]
        return fieldsets

    # -- columns --

    @admin.display(description="our SKU", ordering="sku__code")
    def our_sku(self, obj: Listing) -> str:
        return obj.sku.code

    @admin.display(description="pending push")
    def push_state(self, obj: Listing) -> str:
        return push_state_html(getattr(obj, "pending_push", None))

    @admin.display(description="explain")
    def explain_link(self, obj: Listing) -> str:
        if not obj.pk:
            return "-"
        url = reverse("admin:channels_app_listing_explain", args=[obj.pk])
        return format_html('<a href="{}" class="channels-explain">why this quantity?</a>', url)

    @admin.display(description="push log")
    def recent_pushes(self, obj: Listing) -> str:
        if not obj.pk:
            return "-"
        logs = list(PushLog.objects.filter(listing=obj)[:RECENT_PUSHES])
        full = format_html(
            '<a href="{}">Full push log of this listing</a>',
            changelist_url(PushLog, listing__id__exact=obj.pk),
        )
        if not logs:
            return format_html("Nothing pushed yet. {}", full)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{log.created_at:%Y-%m-%d %H:%M:%S}",
                    badge(log.get_state_display(), PUSH_LOG_TONES.get(log.state, "muted")),
                    "-" if log.quantity is None else log.quantity,
                    log.version,
                    "-" if log.latency_ms is None else f"{log.latency_ms} ms",
                    log.message or "",
                )
                for log in logs
            ),
        )
        return format_html(
            '<table class="channels-pushes"><thead><tr><th>When (UTC)</th><th>State</th>'
            "<th>Quantity</th><th>Version</th><th>Latency</th><th>Message</th></tr></thead>"
            "<tbody>{}</tbody></table><p>{}</p>",
            rows,
            full,
        )

    # -- saving, actions, explain --

    def save_model(self, request: HttpRequest, obj: Listing, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # A new listing, or one whose quantity rules changed, should show its new quantity
        # now rather than at the next stock change.
        affects_quantity = {
            "sku",
            "fulfillment_model",
            "state",
            "channel",
            "price",
            "handling_days",
            *POLICY_FIELDS,
        }
        if not change or affects_quantity & set(form.changed_data):
            self._push(request, [obj], force=False, quiet_skip=True)

    @admin.action(description="Push quantity now", permissions=["change"])
    def push_quantity_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        listings = self._selection(request, queryset)
        if listings is not None:
            self._push(request, listings, force=True)

    def _push(
        self,
        request: HttpRequest,
        listings: Iterable[Listing],
        *,
        force: bool,
        quiet_skip: bool = False,
    ) -> None:
        wanted = {listing.pk: listing for listing in listings}
        # The sync engine's own rule for which listings carry a quantity we push (active, on
        # an enabled channel, not FBA), so this button never pushes what the engine would not.
        pushable = [
            listing
            for listing in listings_for_skus({listing.sku_id for listing in wanted.values()})
            if listing.pk in wanted
        ]
        skipped = len(wanted) - len(pushable)
        if skipped and not quiet_skip:
            self.message_user(
                request,
                f"{skipped} listing(s) not pushed: only active listings of enabled channels "
                "are pushed, and never FBA listings (Amazon shows its own FBA stock).",
                messages.WARNING,
            )
        if not pushable:
            return
        try:
            channel_ids = listings_refresh(listings=pushable, force=force)
        except (ConnectorError, DomainError) as err:
            self.message_user(request, f"Nothing pushed: {err}", messages.ERROR)
            return
        if not channel_ids:
            self.message_user(
                request,
                f"{len(pushable)} listing(s) already show the quantity they should: nothing "
                "to push.",
            )
            return
        codes = sorted({listing.channel.code for listing in pushable})
        self.message_user(
            request,
            format_html(
                '{} listing(s) queued to push now on {}. <a href="{}">See the push log.</a>',
                len(pushable),
                ", ".join(codes),
                changelist_url(PushLog),
            ),
            messages.SUCCESS,
        )

    def object_tools(self, request: HttpRequest, obj: Listing) -> list[dict]:
        tools = [
            _tool("Explain quantity", reverse("admin:channels_app_listing_explain", args=[obj.pk]))
        ]
        if self.has_change_permission(request, obj):
            tools.append(
                _tool(
                    "Push quantity now",
                    reverse("admin:channels_app_listing_push_now", args=[obj.pk]),
                    post=True,
                )
            )
        tools.append(_tool("Push log", changelist_url(PushLog, listing__id__exact=obj.pk)))
        return tools

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/explain/",
                wrap(self.explain_view),
                name="channels_app_listing_explain",
            ),
            path(
                "<path:object_id>/push-now/",
                wrap(require_POST(self.push_now_view)),
                name="channels_app_listing_push_now",
            ),
            *super().get_urls(),
        ]

    def push_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        listing = self._object_or_404(request, object_id)
        if not self.has_change_permission(request, listing):
            raise PermissionDenied
        self._push(request, [listing], force=True)
        return redirect("admin:channels_app_listing_change", listing.pk)

    def explain_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Why the listing shows what it shows: available stock, each rule, the result."""
        listing = self._object_or_404(request, object_id)
        try:
            explanation = listing_quantity_explain(listing=listing)
        except DomainError as err:
            self.message_user(request, err.message, messages.ERROR)
            return redirect("admin:channels_app_listing_change", listing.pk)
        channel = listing.channel
        push = getattr(listing, "pending_push", None)
        policy = [
            (
                Listing._meta.get_field(name).verbose_name,
                getattr(channel, name),
                getattr(listing, name),
            )
            for name in POLICY_FIELDS
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Quantity of {listing}",
            "listing": listing,
            "channel": channel,
            "explanation": explanation,
            "policy": policy,
            "push_state": push_state_html(push) if push else "none",
            "object_tools": self.object_tools(request, listing)[1:],
            "push_log_url": changelist_url(PushLog, listing__id__exact=listing.pk),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/channels_app/listing/explain.html", context)


# -- the push queue and its log ---------------------------------------------------------------


@admin.register(PendingPush)
class PendingPushAdmin(ReadOnlyAdminMixin, ChannelsAdmin):
    """The latest unsent value of each listing; written only by the sync engine. Failed rows
    wait for staff: Retry makes them due again."""

    list_display = (
        "listing_link",
        "channel",
        "quantity",
        "version",
        "state_badge",
        "attempts",
        "next_attempt_at",
        "superseded",
        "last_error_short",
        "first_enqueued_at",
    )
    list_filter = ("state", "channel")
    search_fields = ("^listing__seller_sku",)
    search_help_text = "Start of the seller SKU."
    list_select_related = ("listing__channel", "channel")
    ordering = ("next_attempt_at", "pk")
    actions = ["retry_pushes"]
    fields = (
        "listing_link",
        "channel",
        "state_badge",
        ("quantity", "price", "handling_days"),
        ("version", "claimed_version", "superseded"),
        ("attempts", "next_attempt_at", "lease_until"),
        "last_error",
        ("first_enqueued_at", "updated_at"),
    )
    readonly_fields = ("listing_link", "state_badge")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("channels_app.change_pendingpush")

    @admin.display(description="listing", ordering="listing__seller_sku")
    def listing_link(self, obj: PendingPush) -> str:
        return change_link(obj.listing)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: PendingPush) -> str:
        text, tone = PUSH_STATE_TONES.get(obj.state, (obj.state, "muted"))
        return badge(text, tone)

    @admin.display(description="last error")
    def last_error_short(self, obj: PendingPush) -> str:
        return shortened(obj.last_error)

    @admin.action(description="Retry failed pushes", permissions=["retry"])
    def retry_pushes(self, request: HttpRequest, queryset: QuerySet) -> None:
        pushes = self._selection(request, queryset.select_related("listing__channel"))
        if pushes is None:
            return
        failed = [push for push in pushes if push.state == PendingPush.State.FAILED]
        if len(failed) < len(pushes):
            self.message_user(
                request,
                f"{len(pushes) - len(failed)} selected push(es) have not failed: the sync "
                "engine sends and retries those itself.",
                messages.INFO,
            )
        self._report(request, [self._retry(push) for push in failed])

    @staticmethod
    def _retry(push: PendingPush) -> tuple[str, int]:
        try:
            push_retry(push=push)
        except (ConnectorError, DomainError) as err:
            return f"{push.listing}: not retried: {err}", messages.ERROR
        return f"{push.listing}: due again, quantity {push.quantity}.", messages.SUCCESS

    def object_tools(self, request: HttpRequest, obj: PendingPush) -> list[dict]:
        if obj.state == PendingPush.State.FAILED and self.has_retry_permission(request):
            url = reverse("admin:channels_app_pendingpush_retry", args=[obj.pk])
            return [_tool("Retry now", url, post=True)]
        return []

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(require_POST(self.retry_view)),
                name="channels_app_pendingpush_retry",
            ),
            *super().get_urls(),
        ]

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_retry_permission(request):
            raise PermissionDenied
        push = self._object_or_404(request, object_id)
        if push.state != PendingPush.State.FAILED:
            self.message_user(
                request, f"{push.listing}: this push has not failed.", messages.WARNING
            )
        else:
            self._report(request, [self._retry(push)])
        return redirect("admin:channels_app_pendingpush_changelist")


@admin.register(PushLog)
class PushLogAdmin(ReadOnlyAdminMixin, ChannelsAdmin):
    """Every value computed for a listing and what became of it: pending, sent, superseded
    by a newer value, error, or skipped because the channel already showed it."""

    list_display = (
        "created_at",
        "listing_link",
        "channel",
        "state_badge",
        "quantity",
        "price",
        "version",
        "latency",
        "message_short",
    )
    list_filter = ("state", "listing__channel")
    search_fields = ("^listing__seller_sku",)
    search_help_text = "Start of the seller SKU."
    date_hierarchy = "created_at"
    list_select_related = ("listing__channel",)

    @admin.display(description="listing", ordering="listing__seller_sku")
    def listing_link(self, obj: PushLog) -> str:
        return change_link(obj.listing)

    @admin.display(description="channel")
    def channel(self, obj: PushLog) -> str:
        return obj.listing.channel.code

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: PushLog) -> str:
        return badge(obj.get_state_display(), PUSH_LOG_TONES.get(obj.state, "muted"))

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, obj: PushLog) -> str:
        return "-" if obj.latency_ms is None else f"{obj.latency_ms} ms"

    @admin.display(description="message")
    def message_short(self, obj: PushLog) -> str:
        return shortened(obj.message)


# -- what the integration saw -----------------------------------------------------------------


@admin.register(OrderImportError)
class OrderImportErrorAdmin(ReadOnlyAdminMixin, ChannelsAdmin):
    """Channel records that could not be imported, with their payload. Retry maps the stored
    payload again (after a fix: a new listing, a connector update) and imports it."""

    list_display = (
        "label",
        "channel",
        "reason_short",
        "attempts",
        "created_at",
        "last_attempt_at",
        "state_badge",
    )
    list_filter = (OpenResolvedFilter, "channel")
    search_fields = ("=external_id",)
    search_help_text = "Exact channel order id."
    list_select_related = ("channel",)
    actions = ["retry_import"]
    fields = (
        ("channel", "external_id"),
        "state_badge",
        "reason",
        ("attempts", "created_at", "last_attempt_at", "resolved_at"),
        "order_link",
        "payload",
    )
    readonly_fields = ("state_badge", "order_link", "payload")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("channels_app.change_orderimporterror")

    @admin.display(description="channel order", ordering="external_id")
    def label(self, obj: OrderImportError) -> str:
        return obj.external_id or "(no id)"

    @admin.display(description="reason")
    def reason_short(self, obj: OrderImportError) -> str:
        return shortened(obj.reason, 100)

    @admin.display(description="state", ordering="resolved_at")
    def state_badge(self, obj: OrderImportError) -> str:
        return badge("resolved", "ok") if obj.resolved_at else badge("open", "error")

    @admin.display(description="order")
    def order_link(self, obj: OrderImportError) -> str:
        order = _imported_order(obj)
        if order is None:
            return "not imported"
        url = reverse("admin:oms_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.external_id)

    @admin.display(description="raw payload")
    def payload(self, obj: OrderImportError) -> str:
        return pretty_json(obj.raw_payload)

    @admin.action(description="Retry import", permissions=["retry"])
    def retry_import(self, request: HttpRequest, queryset: QuerySet) -> None:
        errors = self._selection(request, queryset)
        if errors is None:
            return
        still_open = [error for error in errors if error.resolved_at is None]
        if len(still_open) < len(errors):
            self.message_user(
                request,
                f"{len(errors) - len(still_open)} selected error(s) are already resolved.",
                messages.INFO,
            )
        self._report(request, [self._retry(error) for error in still_open])

    @staticmethod
    def _retry(error: OrderImportError) -> tuple[str, int]:
        label = f"{error.channel.code} {error.external_id or '(no id)'}"
        try:
            outcome = import_error_retry(error=error)
        except (ConnectorError, DomainError) as err:
            return f"{label}: not retried: {err}", messages.ERROR
        if outcome == "failed":
            error.refresh_from_db(fields=["reason", "attempts"])
            return (
                f"{label}: still failing after {error.attempts} attempt(s): {error.reason}",
                messages.ERROR,
            )
        order = _imported_order(error)
        if order is None:
            return f"{label}: imported ({outcome}).", messages.SUCCESS
        url = reverse("admin:oms_order_change", args=[order.pk])
        return (
            format_html(
                '{}: imported ({}) {} <a href="{}">order {}</a>.',
                label,
                outcome,
                "on" if _is_defect_error(error) else "as",
                url,
                order.external_id,
            ),
            messages.SUCCESS,
        )

    def object_tools(self, request: HttpRequest, obj: OrderImportError) -> list[dict]:
        if obj.resolved_at is None and self.has_retry_permission(request):
            url = reverse("admin:channels_app_orderimporterror_retry", args=[obj.pk])
            return [_tool("Retry import", url, post=True)]
        return []

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(require_POST(self.retry_view)),
                name="channels_app_orderimporterror_retry",
            ),
            *super().get_urls(),
        ]

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_retry_permission(request):
            raise PermissionDenied
        error = self._object_or_404(request, object_id)
        if error.resolved_at is not None:
            self.message_user(request, "This import error is already resolved.", messages.INFO)
        else:
            self._report(request, [self._retry(error)])
        return redirect("admin:channels_app_orderimporterror_change", error.pk)


def _imported_order(error: OrderImportError) -> Order | None:
    """The order the error's record is now on: the order itself, or for a claim, chargeback
    or feedback (``defect:<channel id>``) the order it was attached to."""
    if not error.external_id:
        return None
    if _is_defect_error(error):
        defect = (
            OrderDefect.objects.filter(
                order__channel_id=error.channel_id,
                external_id=error.external_id.removeprefix(DEFECT_ERROR_PREFIX),
            )
            .select_related("order")
            .first()
        )
        return defect.order if defect else None
    return Order.objects.filter(channel_id=error.channel_id, external_id=error.external_id).first()


def _is_defect_error(error: OrderImportError) -> bool:
    return error.external_id.startswith(DEFECT_ERROR_PREFIX)


@admin.register(SyncLog)
class SyncLogAdmin(ReadOnlyAdminMixin, ChannelsAdmin):
    """The per-channel sync log: each order poll, confirmation, push batch, webhook and
    connection test, with its outcome."""

    list_display = (
        "finished_at",
        "channel",
        "kind",
        "ok_badge",
        "items",
        "errors",
        "duration",
        "message_short",
    )
    list_filter = ("channel", "kind", "ok")
    date_hierarchy = "finished_at"
    list_select_related = ("channel",)

    @admin.display(description="ok", ordering="ok")
    def ok_badge(self, obj: SyncLog) -> str:
        return badge("ok", "ok") if obj.ok else badge("failed", "error")

    @admin.display(description="took")
    def duration(self, obj: SyncLog) -> str:
        seconds = (obj.finished_at - obj.started_at).total_seconds()
        return f"{seconds:.1f} s"

    @admin.display(description="message")
    def message_short(self, obj: SyncLog) -> str:
        return shortened(obj.message, 120)


class ProcessedFilter(OpenResolvedFilter):
    title = "processed"
    parameter_name = "processed"
    field = "processed_at"
    labels = ("Not processed", "Processed")


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, ChannelsAdmin):
    """Webhook deliveries as received (stored before processing; replays are no-ops)."""

    list_display = (
        "received_at",
        "channel",
        "topic",
        "event_id",
        "processed_at",
        "error_short",
    )
    # No filter by topic: listing the distinct topics would read the whole table.
    list_filter = ("channel", ProcessedFilter)
    search_fields = ("=event_id", "=topic")
    search_help_text = "Exact event id or topic (e.g. orders/create)."
    date_hierarchy = "received_at"
    list_select_related = ("channel",)
    fields = (
        ("channel", "topic", "event_id"),
        ("received_at", "processed_at"),
        "error",
        "payload_pretty",
    )
    readonly_fields = ("payload_pretty",)

    @admin.display(description="error")
    def error_short(self, obj: WebhookEvent) -> str:
        return shortened(obj.error)

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookEvent) -> str:
        return pretty_json(obj.payload)


class FixedFilter(OpenResolvedFilter):
    title = "state"
    parameter_name = "state"
    field = "fixed_at"
    labels = ("Not fixed", "Fixed")


@admin.register(DriftRecord)
class DriftRecordAdmin(ReadOnlyAdminMixin, ChannelsAdmin):
    """Listings found showing another quantity than we computed. Filtered by day, this is
    the daily reconciliation audit report."""

    list_display = (
        "found_at",
        "listing_link",
        "channel",
        "shown_quantity",
        "expected_quantity",
        "difference",
        "fixed_at",
    )
    list_filter = ("listing__channel", FixedFilter, ("found_at", admin.DateFieldListFilter))
    search_fields = ("^listing__seller_sku",)
    search_help_text = "Start of the seller SKU."
    date_hierarchy = "found_at"
    list_select_related = ("listing__channel",)

    @admin.display(description="listing", ordering="listing__seller_sku")
    def listing_link(self, obj: DriftRecord) -> str:
        return change_link(obj.listing)

    @admin.display(description="channel")
    def channel(self, obj: DriftRecord) -> str:
        return obj.listing.channel.code

    @admin.display(description="shown - expected")
    def difference(self, obj: DriftRecord) -> str:
        if obj.shown_quantity is None:
            return "not listed"
        return f"{obj.shown_quantity - obj.expected_quantity:+d}"


# -- warehouses that work through an API (WMS / 3PL) --------------------------------------------


class WarehouseConnectionForm(forms.ModelForm):
    new_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The shared secret both sides sign with. Blank keeps the stored one.",
    )

    class Meta:
        model = WarehouseConnection
        fields = ("warehouse", "mode", "endpoint_url", "is_active")

    def save(self, commit: bool = True) -> WarehouseConnection:
        connection = super().save(commit=False)
        if self.cleaned_data.get("new_secret"):
            connection.set_secret(self.cleaned_data["new_secret"])
        if commit:
            connection.save()
        return connection


@admin.register(WarehouseConnection)
class WarehouseConnectionAdmin(ChannelsMedia, admin.ModelAdmin):
    """How each warehouse receives work; the secret is write-only."""

    form = WarehouseConnectionForm
    list_display = (
        "warehouse",
        "mode",
        "endpoint_url",
        "is_active",
        "last_success_at",
        "last_error",
    )
    list_select_related = ("warehouse",)
    readonly_fields = ("has_secret", "last_success_at", "last_error")

    @admin.display(description="secret stored", boolean=True)
    def has_secret(self, obj: WarehouseConnection) -> bool:
        return bool(obj.secret_encrypted)


class ReadOnlyRecordAdmin(ChannelsMedia, admin.ModelAdmin):
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FulfillmentRequest)
class FulfillmentRequestAdmin(ReadOnlyRecordAdmin):
    """Messages to API warehouses and whether each was accepted."""

    list_display = (
        "order",
        "warehouse",
        "kind",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("state", "kind", "warehouse")
    list_select_related = ("order", "warehouse")
    search_fields = ("=idempotency_key", "=order__external_id")
    actions = ["send_now"]

    @admin.action(description="Send again now", permissions=["view"])
    def send_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        sent = 0
        for request_row in queryset.filter(state__in=["pending", "failed"]):
            FulfillmentRequest.objects.filter(pk=request_row.pk).update(
                state="pending", next_attempt_at=timezone.now()
            )
            sent += fulfillment_request_send(request=request_row) == "sent"
        self.message_user(request, f"{sent} message(s) accepted by the warehouse.")


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyRecordAdmin):
    """Calls from warehouses (shipments, counts, returned parcels), once per event id."""

    list_display = ("received_at", "warehouse", "kind", "event_id", "ok", "outcome")
    list_filter = ("kind", "ok", "warehouse")
    list_select_related = ("warehouse",)
    search_fields = ("=event_id",)


class StockSnapshotLineInline(admin.TabularInline):
    model = StockSnapshotLine
    extra = 0
    can_delete = False
    readonly_fields = ("sku_code", "counted", "system_on_hand", "difference", "problem")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StockSnapshot)
class StockSnapshotAdmin(ReadOnlyRecordAdmin):
    """A warehouse's own counts and the drift they showed against our figures."""

    list_display = ("taken_at", "warehouse", "lines_total", "lines_drifted", "received_at")
    list_filter = ("warehouse",)
    list_select_related = ("warehouse",)
    inlines = [StockSnapshotLineInline]
