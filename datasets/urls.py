from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.dataset_list, name="list"),
    path("<id:pk>/", views.dataset_detail, name="detail"),
    path("<id:pk>/upload/", views.dataset_upload, name="upload"),
    path("<id:pk>/rows/add/", views.dataset_row_add, name="row-add"),
    path("from-run/<id:run_id>/", views.dataset_case_from_run, name="from-run"),
]
