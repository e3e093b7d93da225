from django.urls import path

from blocks import views
from core import converters  # noqa: F401 (registers <id:...>)

urlpatterns = [
    path("", views.block_manager, name="block-manager"),
    path("new/", views.block_new, name="block-new"),
    path("check/", views.block_check, name="block-check"),
    path("<id:pk>/", views.block_edit, name="block-edit"),
    path("<id:pk>/delete/", views.block_delete, name="block-delete"),
    path("<id:pk>/history/", views.block_history, name="block-history"),
    path("<id:pk>/history/<id:number>/restore/", views.block_history_restore, name="block-history-restore"),
]
