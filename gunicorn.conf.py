"""gunicorn's configuration: the production entry (Dockerfile) and bench/soak.py.

    gunicorn hrvstr.wsgi --config gunicorn.conf.py

Threads, not processes, carry the requests (most of a request's time is spent waiting on
PostgreSQL, Redis or Stripe), and every request must arrive within a deadline
(hrvstr/gunicorn_worker.py), so slow or stalled clients cannot hold the workers: gunicorn's
sync workers, one request each, were all held by six clients sending a body one byte every
2 s. Environment:

    PORT (8000) / GUNICORN_BIND      where to listen (0.0.0.0:$PORT)
    WEB_CONCURRENCY (3)              worker processes
    GUNICORN_THREADS (8)             threads per worker (each may hold a database connection)
    GUNICORN_TIMEOUT (30)            a request running longer gets its worker restarted;
                                     Stripe calls give up before it (STRIPE_TIMEOUT_SECONDS)
    GUNICORN_REQUEST_READ_TIMEOUT (10)  seconds a client has to send headers and body
    FORWARDED_ALLOW_IPS (127.0.0.1)  proxies whose X-Forwarded-Proto gunicorn believes
    GUNICORN_ACCESS_LOG (-)          where a line per request goes (- is stdout); empty: no
                                     line, where the proxy or load balancer logs requests

Behind a reverse proxy (the intended deployment, see README): the proxy buffers request
bodies and terminates TLS; set TRUSTED_PROXY_COUNT for the app's client addresses.
"""

import os


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{_int('PORT', 8000)}"
worker_class = "hrvstr.gunicorn_worker.DeadlineThreadWorker"
workers = _int("WEB_CONCURRENCY", 3)
threads = _int("GUNICORN_THREADS", 8)
# A worker takes no more connections than it has threads: one whose threads are all busy
# stops accepting and another worker gets the connection, instead of it queueing behind
# slow clients. No keep-alive then (a kept-alive idle connection would hold a slot); behind
# a proxy it buys nothing anyway.
worker_connections = threads
keepalive = 0
timeout = _int("GUNICORN_TIMEOUT", 30)
# Each worker proves it is alive by touching a file on every turn of its loop (several per
# request): on a container's overlay filesystem that utime() cost 0.5 ms, more than our
# webhook intake's own Python (bench/task_queue.py). In memory it is free (gunicorn's advice).
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
graceful_timeout = 20
# Header limits (gunicorn's defaults, stated): a request line of 4 KB, 50 header fields of
# 8 KB each at most. Bodies are limited by the app (HRVSTR_MAX_REQUEST_BYTES, 1 MiB).
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# An empty value means none: gunicorn formats the line for any file, /dev/null included.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Not preload_app: it would fork ready workers (a server up in 1.5 s instead of 2.6-3.2 s
# here), but the master imports the app before it binds the port, so a restarted instance
# refuses connections for that time instead of queueing them: 180 connection errors in
# bench/soak.py --short with it, 25 without (2026-12-03).
# gunicorn 27's control socket (~/.gunicorn/gunicorn.ctl) is one path per user: two servers
# on one machine would fight over it, and nothing here uses it.
control_socket_disable = True
