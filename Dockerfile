FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY platform ./platform
COPY orders ./orders
COPY inventory ./inventory
COPY payments ./payments
COPY shipping ./shipping
COPY projections ./projections
COPY manage.py ./
RUN pip install --no-cache-dir . && DEBUG=1 SECRET_KEY=build python manage.py collectstatic --noinput
USER nobody
EXPOSE 8000
# Daphne, refusing a body over MAX_REQUEST_BYTES before reading it (platform_core.web.server).
CMD ["python", "-m", "platform_core.web.server", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
