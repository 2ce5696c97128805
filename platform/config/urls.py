from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health
from inventory.api import ProductRegisterApi, ProductRestockApi
from orders.api import OrderCancelApi, OrderEventsApi, OrderPlaceApi
from platform_core.operations.metrics import metrics_view
from platform_core.runtime import runtime
from platform_core.web.drf import route_by_method
from platform_core.web.http import json_error_view
from platform_core.web.token_api import TokenObtainApi
from projections.api import (
    FulfillmentOverviewApi,
    OrderDetailApi,
    OrderListApi,
    ProductListApi,
)
from projections.pages import board_page, order_page
from shipping.api import ShipmentDeliverApi, ShipmentDispatchApi

ProductCollectionApi = route_by_method("ProductCollectionApi", ProductListApi, ProductRegisterApi)
OrderCollectionApi = route_by_method("OrderCollectionApi", OrderListApi, OrderPlaceApi)

urlpatterns = [
    path("api/auth/token/", TokenObtainApi.as_view(), name="auth-token"),
    path("api/products/", ProductCollectionApi.as_view(), name="product-list"),
    path("api/products/<str:sku>/restock/", ProductRestockApi.as_view(), name="product-restock"),
    path("api/orders/", OrderCollectionApi.as_view(), name="order-list"),
    path("api/orders/<uuid:order_id>/", OrderDetailApi.as_view(), name="order-detail"),
    path("api/orders/<uuid:order_id>/cancel/", OrderCancelApi.as_view(), name="order-cancel"),
    path("api/orders/<uuid:order_id>/events/", OrderEventsApi.as_view(), name="order-events"),
    path(
        "api/shipments/<str:shipment_id>/dispatch/",
        ShipmentDispatchApi.as_view(),
        name="shipment-dispatch",
    ),
    path(
        "api/shipments/<str:shipment_id>/deliver/",
        ShipmentDeliverApi.as_view(),
        name="shipment-deliver",
    ),
    path("api/overview/", FulfillmentOverviewApi.as_view(), name="fulfillment-overview"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(pattern_name="board"), name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="projections/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("board/", board_page, name="board"),
    path("board/orders/<uuid:order_id>/", order_page, name="board-order"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view(lambda: runtime().projections), name="metrics"),
]

handler400 = json_error_view(400, "bad_request", "Bad request.")
handler403 = json_error_view(403, "permission_denied", "Forbidden.")
handler404 = json_error_view(404, "not_found", "Not found.")
handler500 = json_error_view(500, "server_error", "Internal server error.")
