from django.urls import path

from activities import apis, views

# The JSON API, mounted at /api/ (hrvstr/urls.py).
urlpatterns = [path("activity", apis.ActivityFeedApi.as_view(), name="api-activity")]

# The server-rendered page, mounted at the site root.
page_urlpatterns = [path("activity/", views.activity, name="activity")]
