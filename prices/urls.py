from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from prices import views

app_name = "prices"
urlpatterns = [
    path("", views.price_list, name="list"),
    path("new/", views.price_create, name="create"),
    path("<id:pk>/", views.price_edit, name="edit"),
    path("<id:pk>/delete/", views.price_delete, name="delete"),
]
