"""The Django project. Its Celery app is imported here, as Celery's Django guide does, so
that every process (web, worker, management command) sends tasks through it. Defining
the app reads no settings and opens no connection."""

from config.celery import app as celery_app

__all__ = ("celery_app",)
