from django.apps import AppConfig


class ProjectionsConfig(AppConfig):
    name = "projections"
    verbose_name = "Read models"
    default_auto_field = "django.db.models.BigAutoField"
