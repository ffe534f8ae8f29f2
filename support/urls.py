from django.contrib import admin
from django.urls import path

from support import views

# Mounted under /admin/ before the admin site's own URLs, behind the admin's staff login.
urlpatterns = [
    path("dashboard/", admin.site.admin_view(views.dashboard), name="support-dashboard"),
]
