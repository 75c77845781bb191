# WHAGO API / worker image. The same image runs `whago serve`, `whago worker` and `whago migrate`.
FROM python:3.11-slim

# Production unless told otherwise: development would invent per-process secrets.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 WHAGO_ENV=production
WORKDIR /srv/whago

COPY pyproject.toml README.md ./
COPY app ./app
COPY piccolo_migrations ./piccolo_migrations
# Editable install: the app finds piccolo_migrations/ beside app/ in this source tree.
RUN pip install --no-compile -e . && useradd --system --home /srv/whago whago

USER whago
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status == 200 else 1)"
CMD ["whago", "serve", "--host", "0.0.0.0", "--port", "8000"]
