from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from payloads import views

urlpatterns = [
    path("", views.payload_builder, name="payload-builder"),
    path("new/", views.payload_new, name="payload-new"),
    path("preview/", views.payload_preview, name="payload-preview"),
    path("try/", views.payload_try, name="payload-try"),
    path("<id:pk>/", views.payload_edit, name="payload-edit"),
    path("<id:pk>/delete/", views.payload_delete, name="payload-delete"),
    path("<id:pk>/history/", views.payload_history, name="payload-history"),
    path("<id:pk>/history/<id:number>/restore/", views.payload_history_restore, name="payload-history-restore"),
]
