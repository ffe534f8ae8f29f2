# Production image: gunicorn serving the Django app. Configure it with environment variables
# (DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS, Stripe keys; see README).
#
# gunicorn.conf.py: threaded workers (WEB_CONCURRENCY processes x GUNICORN_THREADS threads),
# a 30 s request timeout, header limits and a deadline for reading each request, so slow
# clients cannot hold the workers. Run it behind a reverse proxy that terminates TLS and
# buffers request bodies (nginx does by default), set TRUSTED_PROXY_COUNT to the number of
# proxies that append to X-Forwarded-For, and FORWARDED_ALLOW_IPS to the proxy's address.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# Pooled PostgreSQL connections (psycopg's pool): no connect and no health-check round trip
# per request. DATABASE_POOL=false goes back to persistent connections checked per request.
ENV DATABASE_POOL=true
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings to load; the key used here never reaches a running container.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --create-home --uid 10001 hrvstr
USER hrvstr

EXPOSE 8000
# The health check names an allowed host (Django refuses others) and is exempt from the
# HTTPS redirect (SECURE_REDIRECT_EXEMPT), so it works with production settings.
HEALTHCHECK CMD python -c "import os, urllib.request as u; host = os.environ.get('ALLOWED_HOSTS', 'localhost').split(',')[0].strip(); u.urlopen(u.Request(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", headers={'Host': host}), timeout=5)" || exit 1
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py createcachetable && exec gunicorn hrvstr.wsgi --config gunicorn.conf.py"]
