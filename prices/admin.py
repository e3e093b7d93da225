"""The price book in the admin: saved through prices.services, so a tie is refused on the model field
and every edit counts a version, as on the Prices page and the API."""
from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.forms import RejectLoneSurrogatesMixin
from prices import services
from prices.models import PRICE_FIELDS, Price


class PriceAdminForm(RejectLoneSurrogatesMixin, forms.ModelForm):
    class Meta:
        model = Price
        fields = ["model", "match", "endpoint", "effective_from", *PRICE_FIELDS, "currency", "note"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        candidate = copy.copy(self.instance)
        for name, value in cleaned.items():
            setattr(candidate, name, value)
        tie = services.price_tie(candidate) if cleaned.get("model") and cleaned.get("effective_from") else None
        if tie:
            self.add_error("model", tie)
        return cleaned


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    form = PriceAdminForm
    list_display = ["model", "match", "endpoint", "effective_from", *PRICE_FIELDS, "currency", "version", "note"]
    list_filter = ["match", "currency", "endpoint"]
    search_fields = ["model", "note", "endpoint__name"]
    readonly_fields = ["version", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["model", "match", "endpoint", "effective_from"]}),
        ("Per million tokens", {"fields": [*PRICE_FIELDS, "currency", "note"]}),
        ("History", {"fields": ["version", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Price]:
        return super().get_queryset(request).select_related("endpoint")

    def save_model(self, request: HttpRequest, obj: Price, form: forms.Form, change: bool) -> None:
        services.price_save(obj)

    def delete_model(self, request: HttpRequest, obj: Price) -> None:
        services.price_delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Price]) -> None:
        for price in queryset:
            services.price_delete(price)
