from django.urls import path

from activities import apis

urlpatterns = [path("activity", apis.ActivityFeedApi.as_view(), name="api-activity")]
