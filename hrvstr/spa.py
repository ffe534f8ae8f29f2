"""The original HRVSTR SPA, built, served on our origin (``SPA_DIST_DIR``).

whitenoise serves the bundle's files (``WHITENOISE_ROOT``; Vite's content-hashed assets with a
year's cache). Every other path that no page, API or admin URL claimed is one of the SPA's
client routes and gets its index.html, never cached so a new build is picked up at once. Our
URLs come first: this view is the last pattern.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt

# Never the SPA: our API, the admin, static files and Stripe's webhook URLs answer for these.
RESERVED_PREFIXES = ("api/", "admin/", "static/", "stripe/")

# Vite's hashed bundles (assets/index-B3x_k9aZ.js) and Django's manifest static files
# (site.3f2a1b9c8d7e.css) never change under their name.
IMMUTABLE_FILE_PATTERN = r"^/(assets/.+-[0-9A-Za-z_-]{8,}|static/.+\.[0-9a-f]{12})\.[0-9a-z]+$"


# Exempt: it changes nothing, and as the catch-all it must answer a POST to an unknown URL
# with a 404 (as Django does without it), not with the CSRF failure page.
@csrf_exempt
def spa_index(request: HttpRequest, path: str = "") -> HttpResponse:
    dist = settings.SPA_DIST_DIR
    if not dist or path.startswith(RESERVED_PREFIXES):
        raise Http404("No such page")
    if request.method not in {"GET", "HEAD"}:
        return HttpResponseNotAllowed(["GET", "HEAD"])
    if "." in path.rsplit("/", 1)[-1]:
        # A missing file (whitenoise would have served it) is a 404, not the app's HTML.
        raise Http404("No such file")
    index = Path(dist) / "index.html"
    try:
        html = index.read_bytes()
    except OSError:
        raise Http404("The SPA's index.html is missing") from None
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response
