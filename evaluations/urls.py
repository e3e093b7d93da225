from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from evaluations import views

app_name = "evaluations"
urlpatterns = [
    path("runs/<id:pk>/", views.run_review, name="run-review"),
]
