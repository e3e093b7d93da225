from django.urls import path

from core import converters  # noqa: F401 (registers <id:...>)
from experiments import review_views, views

app_name = "experiments"
urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("new/", views.experiment_new, name="new"),
    path("compare/", views.experiment_compare, name="compare"),
    path("<id:pk>/", views.experiment_detail, name="detail"),
    path("<id:pk>/results/", views.experiment_results, name="results"),
    path("<id:pk>/cancel/", views.experiment_cancel, name="cancel"),
    path("<id:pk>/retry/", views.experiment_retry, name="retry"),
    path("<id:pk>/export/", views.experiment_export, name="export"),
    path("<id:pk>/reevaluate/", views.experiment_reevaluate, name="reevaluate"),
    path("<id:pk>/rescore-errors/", views.experiment_rescore_errors, name="rescore-errors"),
    path("<id:pk>/review/", review_views.experiment_review, name="review"),
    path("<id:pk>/review/ab/", review_views.experiment_review_ab, name="review-ab"),
    path("<id:pk>/reviews/", review_views.experiment_reviews, name="reviews"),
]
