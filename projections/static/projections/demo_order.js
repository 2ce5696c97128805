// "Place a demo order" on the board (customers): POST /api/orders/ with the session and the
// CSRF token, as any browser client of the API would. The card then arrives over the feed.
(function () {
  "use strict";

  const form = document.getElementById("demo-order");
  if (!form) return;
  const result = document.getElementById("demo-order-result");
  const products = form.elements.sku;

  function csrfToken() {
    return document.querySelector('meta[name="csrf-token"]').content;
  }

  fetch(form.dataset.productsUrl, { headers: { Accept: "application/json" } })
    .then((response) => response.json())
    .then((body) => {
      for (const product of body.results || body) {
        const label = product.name + " (" + product.price + ", " + product.available + " left)";
        products.append(new Option(label, product.sku));
      }
      form.dataset.ready = "true";
    });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      items: [{ sku: products.value, quantity: Number(form.elements.quantity.value) }],
      shipping_address: {
        name: form.dataset.customerName,
        line1: "1 Demo Street",
        city: "Leeds",
        postal_code: "LS1 1AA",
        country: "GB",
      },
      payment_token: form.elements.payment_token.value,
    };
    const response = await fetch(form.dataset.ordersUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (response.status === 202) {
      result.dataset.orderId = answer.id;
      result.dataset.state = "placed";
      result.textContent = "Placed order #" + window.OrderLive.shortId(answer.id) + ".";
    } else {
      result.dataset.state = "failed";
      result.textContent = (answer.error && answer.error.message) || "The order was refused (" + response.status + ").";
    }
  });
})();
