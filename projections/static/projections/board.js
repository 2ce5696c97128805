// The live order board: one column per status, one card per order. Cards come from
// GET /api/orders/ and then from the ws/orders/ feed; a card is replaced by order id.
(function () {
  "use strict";

  const { LiveOrders, fetchAllPages, fetchJson, element, shortId, isStale } = window.OrderLive;
  const MAX_PAGES = 20; // 20 pages of 50: the board is a demo, not an archive

  const root = document.getElementById("board");
  const config = root.dataset;
  const shown = new Map(); // order id -> the read model on its card

  function orderUrl(id) {
    return config.orderPageTemplate.replace("00000000-0000-0000-0000-000000000000", id);
  }

  function shipmentText(shipment) {
    if (!shipment || !shipment.status) return "—";
    return shipment.status;
  }

  function renderCard(order) {
    const shipment = order.shipment || {};
    const payment = order.payment || {};
    return element(
      "article",
      { class: "card", "data-testid": "order-card", "data-order-id": order.id, "data-status": order.status },
      element(
        "header",
        {},
        element("a", { href: orderUrl(order.id), "data-testid": "order-link" }, "#" + shortId(order.id)),
        element("span", { class: "total", "data-testid": "order-total" }, order.total)
      ),
      element(
        "dl",
        {},
        element("dt", {}, "payment"),
        element("dd", { "data-testid": "payment-status" }, payment.status || "—"),
        element("dt", {}, "shipment"),
        element("dd", { "data-testid": "shipment-status" }, shipmentText(shipment)),
        shipment.tracking_number ? element("dt", {}, "tracking") : null,
        shipment.tracking_number
          ? element("dd", { "data-testid": "tracking-number" }, shipment.tracking_number)
          : null
      ),
      order.status === "cancelled" && order.cancellation_reason
        ? element("p", { class: "reason", "data-testid": "cancellation-reason" }, order.cancellation_reason)
        : null
    );
  }

  // Newest first within a column, by when the order was placed.
  function insertSorted(list, card, placedAt) {
    for (const other of list.children) {
      if ((shown.get(other.dataset.orderId) || {}).placed_at < placedAt) {
        list.insertBefore(card, other);
        return;
      }
    }
    list.append(card);
  }

  function updateCounts() {
    for (const column of root.querySelectorAll("[data-column]")) {
      const count = column.querySelector(".cards").children.length;
      column.dataset.count = String(count);
      column.querySelector(".count").textContent = String(count);
    }
  }

  function upsert(order) {
    if (isStale(order, shown.get(order.id))) return;
    const existing = root.querySelector('[data-testid="order-card"][data-order-id="' + order.id + '"]');
    const list = root.querySelector('[data-column="' + order.status + '"] .cards');
    shown.set(order.id, order);
    if (existing) existing.remove();
    if (list) insertSorted(list, renderCard(order), order.placed_at);
    updateCounts();
  }

  function refetch(orderId) {
    fetchJson(config.ordersUrl + orderId + "/").then(upsert, (error) => console.warn(error));
  }

  function resync() {
    fetchAllPages(config.ordersUrl, MAX_PAGES).then(
      (orders) => {
        orders.forEach(upsert);
        root.dataset.loaded = "true";
      },
      (error) => console.warn(error)
    );
  }

  const indicator = document.getElementById("live-status");
  const live = new LiveOrders({
    path: config.wsPath,
    probeUrl: config.ordersUrl,
    indicator,
    onOrder: upsert,
    onStale: refetch,
    onResync: resync,
  });

  const toggle = document.getElementById("live-toggle");
  toggle.addEventListener("click", () => {
    if (live.paused) live.resume();
    else live.pause();
    toggle.textContent = live.paused ? "Resume live updates" : "Pause live updates";
  });

  window.orderBoard = { live, upsert, shown };
  live.start();
})();
