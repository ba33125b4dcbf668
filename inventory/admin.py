"""Inventory in the Django admin.

Counters (on hand, reserved) and the ledger are read-only everywhere. Stock changes go
through forms (``inventory.forms``) that call ``inventory.services``; a ``DomainError``
comes back as an error message and changes nothing. Changelists select their related rows
up front and skip the full count, so they stay fast on millions of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from . import selectors, services
from .exceptions import DomainError
from .forms import (
    STOCK_OPERATION_FORMS,
    BundleComponentForm,
    BundleComponentFormSet,
    CarrierPickupForm,
    CarrierPickupFormSet,
    SKUAdminForm,
    StockOperationForm,
    StockReceiveNewForm,
)
from .models import (
    SKU,
    BundleComponent,
    CarrierPickup,
    IdempotencyRecord,
    Reservation,
    StockDiscrepancy,
    StockLevel,
    StockMovement,
    Warehouse,
)

LIST_PER_PAGE = 100


class ReadOnlyAdminMixin:
    """Rows written only by services: viewable, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _level_label(level: StockLevel) -> str:
    return f"{level.sku.code} @ {level.warehouse.code}"


def _sellable_available(level: StockLevel) -> int:
    # Same rule as selectors.stock_available: quarantine stock is never available to sell.
    return level.available if level.warehouse.is_sellable else 0


def _figures(level: StockLevel) -> str:
    return (
        f"{_level_label(level)}: on hand {level.on_hand}, reserved {level.reserved}, "
        f"available {_sellable_available(level)}"
    )


def _already_applied(idempotency_key: str) -> bool:
    """Whether a stock operation under this key was applied before (read for the message only;
    the service itself guarantees the key applies once)."""
    return bool(idempotency_key) and IdempotencyRecord.objects.filter(key=idempotency_key).exists()


# -- warehouses and SKUs ----------------------------------------------------------------------


class CarrierPickupInline(admin.TabularInline):
    model = CarrierPickup
    form = CarrierPickupForm
    formset = CarrierPickupFormSet
    extra = 0
    verbose_name = "carrier pickup"
    verbose_name_plural = (
        "carrier pickups (cut-offs in the warehouse's time zone; orders go to the pickup whose "
        "carrier or services name their service level, else to the default one)"
    )


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    inlines = [CarrierPickupInline]
    list_display = ("code", "name", "kind", "time_zone", "country", "is_active")
    list_filter = ("kind", "is_active", "country")
    search_fields = ("code", "name")
    fields = ("code", "name", "kind", "time_zone", "country", "is_active")
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE


class BundleComponentInline(admin.TabularInline):
    model = BundleComponent
    fk_name = "bundle"
    form = BundleComponentForm
    formset = BundleComponentFormSet
    autocomplete_fields = ("component",)
    extra = 1
    verbose_name = "bundle component"
    verbose_name_plural = "bundle components (standard SKUs only)"


class SKUChangeList(ChangeList):
    """Adds the available quantity of every SKU on the page with one batched read."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        skus = list(self.result_list)
        available = selectors.stock_available_many(skus=skus)
        for sku in skus:
            sku.available_units = available[sku.pk]


@admin.register(SKU)
class SKUAdmin(admin.ModelAdmin):
    form = SKUAdminForm
    inlines = [BundleComponentInline]
    list_display = ("code", "title", "kind", "category", "barcode", "available", "is_active")
    list_filter = ("kind", "is_active", "category")
    search_fields = ("code", "title", "=barcode")
    readonly_fields = ("available",)
    fields = (
        "code",
        "title",
        "barcode",
        "kind",
        "category",
        "weight_grams",
        "is_active",
        "available",
    )
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return SKUChangeList

    @admin.display(description="available")
    def available(self, obj: SKU) -> int | str:
        if not obj.pk:
            return "-"
        if hasattr(obj, "available_units"):
            return obj.available_units
        return selectors.stock_available(sku=obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # The component picker of the bundle inline offers standard SKUs only.
        if request.GET.get("model_name") == "bundlecomponent":
            queryset = queryset.filter(kind=SKU.Kind.STANDARD)
        return queryset, may_have_duplicates

    def get_urls(self) -> list:
        return [
            path(
                "<path:object_id>/explain/",
                self.admin_site.admin_view(self.explain_view),
                name="inventory_sku_explain",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_receive": request.user.has_perm(StockReceiveNewForm.permission),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def explain_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        sku = self.get_object(request, unquote(object_id))
        if sku is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, sku):
            raise PermissionDenied
        return _render_explanation(
            request,
            self,
            explanation=selectors.stock_explain(sku=sku),
            subject=sku.code,
            back_url=reverse("admin:inventory_sku_change", args=[sku.pk]),
            ledger_query=f"sku__id__exact={sku.pk}",
        )


# -- stock levels and their operations --------------------------------------------------------


class AvailabilityFilter(admin.SimpleListFilter):
    title = "availability"
    parameter_name = "availability"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [
            ("out", "Nothing available"),
            ("in", "Some available"),
            ("reserved", "Has reservations"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "out":
            return queryset.filter(on_hand__lte=F("reserved"))
        if self.value() == "in":
            return queryset.filter(on_hand__gt=F("reserved"))
        if self.value() == "reserved":
            return queryset.filter(reserved__gt=0)
        return queryset


@admin.register(StockLevel)
class StockLevelAdmin(admin.ModelAdmin):
    """Stock levels: counters are read-only; receive/adjust/count/transfer go through forms."""

    list_display = (
        "sku_code",
        "warehouse",
        "on_hand",
        "reserved",
        "available",
        "bin_location",
        "updated_at",
    )
    list_display_links = ("sku_code",)
    list_filter = ("warehouse", "warehouse__kind", AvailabilityFilter)
    search_fields = ("sku__code", "sku__title", "=sku__barcode", "bin_location")
    list_select_related = ("sku", "warehouse")
    # Facet counts are one aggregate per filter choice: too slow on millions of rows.
    show_facets = admin.ShowFacets.NEVER
    fields = ("sku", "warehouse", "on_hand", "reserved", "available", "bin_location", "updated_at")
    readonly_fields = ("sku", "warehouse", "on_hand", "reserved", "available", "updated_at")
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Stock levels come into being with the first receipt (see the receive form).
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The ledger and reservations refer to the stock level; it must outlive them.
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.stock_level_list()

    @admin.display(description="SKU", ordering="sku__code")
    def sku_code(self, obj: StockLevel) -> str:
        return obj.sku.code

    @admin.display(description="available", ordering=F("on_hand") - F("reserved"))
    def available(self, obj: StockLevel) -> int:
        return _sellable_available(obj)

    def save_model(self, request: HttpRequest, obj: StockLevel, form, change: bool) -> None:
        # Only the bin is editable; saving every field would write back counters read
        # before a concurrent reservation and lose it.
        obj.save(update_fields=["bin_location", "updated_at"])

    def _operations(self, request: HttpRequest) -> list[type[StockOperationForm]]:
        return [f for f in STOCK_OPERATION_FORMS.values() if request.user.has_perm(f.permission)]

    def get_list_display(self, request: HttpRequest) -> list[str | Callable]:
        allowed = self._operations(request)

        @admin.display(description="operations")
        def operations(obj: StockLevel) -> str:
            links = [
                (reverse(f"admin:inventory_stocklevel_{form.verb}", args=[obj.pk]), form.verb)
                for form in allowed
            ]
            links.append((reverse("admin:inventory_stocklevel_explain", args=[obj.pk]), "explain"))
            return format_html(
                '<span style="white-space: nowrap">{}</span>',
                format_html_join(" | ", '<a href="{}">{}</a>', links),
            )

        return [*self.list_display, operations]

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        operation_urls = [
            path(
                f"<path:object_id>/{verb}/",
                wrap(self.operation_view),
                {"verb": verb},
                name=f"inventory_stocklevel_{verb}",
            )
            for verb in STOCK_OPERATION_FORMS
        ]
        return [
            path("receive/", wrap(self.receive_new_view), name="inventory_stocklevel_receive_new"),
            path(
                "<path:object_id>/explain/",
                wrap(self.explain_view),
                name="inventory_stocklevel_explain",
            ),
            *operation_urls,
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {
            **(extra_context or {}),
            "can_receive": request.user.has_perm(StockReceiveNewForm.permission),
        }
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "stock_operations": [
                (
                    form.title,
                    reverse(f"admin:inventory_stocklevel_{form.verb}", args=[unquote(object_id)]),
                )
                for form in self._operations(request)
            ],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def operation_view(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponse:
        form_class = STOCK_OPERATION_FORMS[verb]
        if not request.user.has_perm(form_class.permission):
            raise PermissionDenied
        level = self.get_object(request, unquote(object_id))
        if level is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return self._operation(request, form_class, level)

    def receive_new_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(StockReceiveNewForm.permission):
            raise PermissionDenied
        return self._operation(request, StockReceiveNewForm, None)

    def _operation(
        self,
        request: HttpRequest,
        form_class: type[StockOperationForm],
        level: StockLevel | None,
    ) -> HttpResponse:
        if request.method == "POST":
            form = form_class(request.POST, stock_level=level)
            if form.is_valid():
                replay = _already_applied(form.cleaned_data["idempotency_key"])
                try:
                    changed = form.execute(actor=request.user)
                except DomainError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                else:
                    if replay:
                        self.message_user(
                            request,
                            "This form was already submitted; nothing changed. "
                            + "; ".join(_figures(lvl) for lvl in changed),
                            messages.WARNING,
                        )
                    else:
                        self.message_user(
                            request,
                            f"{form_class.title}: done. "
                            + "; ".join(_figures(lvl) for lvl in changed),
                            messages.SUCCESS,
                        )
                    return redirect("admin:inventory_stocklevel_change", changed[0].pk)
        else:
            # Links may prefill fields (?sku=CODE&warehouse=ID), never the idempotency key.
            initial = {k: v for k, v in request.GET.items() if k != "idempotency_key"}
            form = form_class(stock_level=level, initial=initial)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": form_class.title + (f": {_level_label(level)}" if level else ""),
            "form": form,
            "stock_level": level,
            "level_label": _level_label(level) if level else "",
            "available": _sellable_available(level) if level else None,
            "submit_label": form_class.title,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/inventory/stocklevel/operation.html", context)

    def explain_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        level = self.get_object(request, unquote(object_id))
        if level is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, level):
            raise PermissionDenied
        return _render_explanation(
            request,
            self,
            explanation=selectors.stock_explain(sku=level.sku, warehouse=level.warehouse),
            subject=_level_label(level),
            back_url=reverse("admin:inventory_stocklevel_change", args=[level.pk]),
            ledger_query=f"sku__id__exact={level.sku_id}&warehouse__id__exact={level.warehouse_id}",
        )


def _render_explanation(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    *,
    explanation: selectors.StockExplanation,
    subject: str,
    back_url: str,
    ledger_query: str,
) -> TemplateResponse:
    kind_labels = dict(StockMovement.Kind.choices)
    warehouses = [
        {
            "row": w,
            "movements": [(kind_labels.get(k, k), total) for k, total in w.movements.items()],
        }
        for w in explanation.warehouses
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"Availability of {subject}",
        "subject": subject,
        "explanation": explanation,
        "warehouses": warehouses,
        "back_url": back_url,
        "ledger_url": reverse("admin:inventory_stockmovement_changelist") + "?" + ledger_query,
    }
    return TemplateResponse(request, "admin/inventory/stock_explain.html", context)


# -- ledger, reservations, discrepancies ------------------------------------------------------


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The append-only ledger: nothing here writes it."""

    list_display = (
        "id",
        "created_at",
        "kind",
        "sku",
        "warehouse",
        "on_hand_delta",
        "reserved_delta",
        "reference",
        "reason",
        "actor_label",
    )
    list_filter = ("kind", "warehouse", ("created_at", admin.DateFieldListFilter))
    # Exact SKU code and reference prefix: both use an index on a ledger of millions of rows.
    search_fields = ("=sku__code", "^reference")
    search_help_text = "Exact SKU code, or the start of a reference."
    list_select_related = ("sku", "warehouse")
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.movement_list()


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "reference",
        "line_reference",
        "sku",
        "requested_sku",
        "warehouse",
        "quantity",
        "quantity_consumed",
        "quantity_released",
        "status",
        "created_at",
    )
    list_filter = ("status", "warehouse")
    search_fields = ("^reference", "=sku__code", "=requested_sku__code")
    search_help_text = "The start of a reference, or an exact SKU code."
    list_select_related = ("sku", "requested_sku", "warehouse")
    show_facets = admin.ShowFacets.NEVER
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE


class OpenDiscrepancyFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("open", "Open"), ("repaired", "Repaired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "open":
            return queryset.filter(repaired_at__isnull=True)
        if self.value() == "repaired":
            return queryset.filter(repaired_at__isnull=False)
        return queryset


@admin.register(StockDiscrepancy)
class StockDiscrepancyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Counters found to differ from the ledger; repaired only by ``stock_ledger_repair``."""

    list_display = (
        "stock_level_label",
        "field",
        "counter_value",
        "ledger_value",
        "detected_at",
        "repaired_at",
    )
    list_filter = ("field", OpenDiscrepancyFilter)
    search_fields = ("=stock_level__sku__code",)
    list_select_related = ("stock_level__sku", "stock_level__warehouse")
    actions = ["repair_from_ledger"]
    show_full_result_count = False
    list_per_page = LIST_PER_PAGE

    @admin.display(description="stock level", ordering="stock_level")
    def stock_level_label(self, obj: StockDiscrepancy) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:inventory_stocklevel_change", args=[obj.stock_level_id]),
            _level_label(obj.stock_level),
        )

    def has_repair_ledger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.repair_ledger")

    @admin.action(description="Repair counters from the ledger", permissions=["repair_ledger"])
    def repair_from_ledger(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The service checks every stock level against the ledger, not only the selected
        # rows: a counter is only right once all of them agree.
        self._repair(request)

    def get_urls(self) -> list:
        return [
            path(
                "repair/",
                self.admin_site.admin_view(require_POST(self.repair_view)),
                name="inventory_stockdiscrepancy_repair",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {
            **(extra_context or {}),
            "can_repair": self.has_repair_ledger_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def repair_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if not self.has_repair_ledger_permission(request):
            raise PermissionDenied
        self._repair(request)
        return redirect("admin:inventory_stockdiscrepancy_changelist")

    def _repair(self, request: HttpRequest) -> None:
        try:
            found = services.stock_ledger_repair(repair=True)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        if not found:
            self.message_user(request, "Counters agree with the ledger: nothing to repair.")
            return
        repaired = [d for d in found if d.repaired_at]
        still_open = len(found) - len(repaired)
        self.message_user(
            request,
            f"{len(found)} counter(s) differed from the ledger; {len(repaired)} repaired"
            + (f", {still_open} left open for review." if still_open else "."),
            messages.WARNING if still_open else messages.SUCCESS,
        )
