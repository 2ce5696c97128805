// An order's page: items, total, statuses and a timeline of its history, first as the
// server rendered it, then live from ws/orders/<id>/.
(function () {
  "use strict";

  const { LiveOrders, fetchJson, element, isStale } = window.OrderLive;
  const root = document.getElementById("order");
  const apiUrl = root.dataset.orderUrl;
  let shown = JSON.parse(document.getElementById("order-data").textContent);

  function setText(testid, text) {
    root.querySelector('[data-testid="' + testid + '"]').textContent = text || "—";
  }

  function renderItems(items) {
    const body = root.querySelector('[data-testid="order-items"]');
    body.replaceChildren(
      ...items.map((item) =>
        element(
          "tr",
          { "data-testid": "order-item", "data-sku": item.sku },
          element("td", {}, item.name),
          element("td", {}, item.sku),
          element("td", { class: "number" }, item.quantity),
          element("td", { class: "number" }, item.unit_price)
        )
      )
    );
  }

  function renderTimeline(history) {
    const list = root.querySelector('[data-testid="timeline"]');
    list.replaceChildren(
      ...history.map((entry) =>
        element(
          "li",
          { "data-testid": "timeline-entry", "data-type": entry.type },
          element("time", { datetime: entry.at }, new Date(entry.at).toLocaleString()),
          " ",
          element("span", {}, entry.type)
        )
      )
    );
    list.dataset.count = String(history.length);
  }

  function render(order) {
    if (isStale(order, shown)) return;
    shown = order;
    const shipment = order.shipment || {};
    root.dataset.status = order.status;
    setText("order-status", order.status);
    setText("order-total", order.total);
    setText("payment-status", (order.payment || {}).status);
    setText("shipment-status", shipment.status);
    setText("tracking-number", shipment.tracking_number);
    setText("cancellation-reason", order.cancellation_reason);
    root.querySelector('[data-testid="cancellation"]').hidden = order.status !== "cancelled";
    renderItems(order.items || []);
    renderTimeline(order.history || []);
  }

  function reload() {
    fetchJson(apiUrl).then(render, (error) => console.warn(error));
  }

  render(shown);
  const live = new LiveOrders({
    path: root.dataset.wsPath,
    probeUrl: apiUrl,
    indicator: document.getElementById("live-status"),
    onOrder: (order) => {
      if (order.id === shown.id) render(order);
    },
    onStale: reload,
    onResync: reload,
  });
  window.orderPage = { live, render };
  live.start();
})();
