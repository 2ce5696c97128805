// The websocket feed of order read models (ws/orders/ or ws/orders/<id>/), shared by the
// board and the order page. It survives drops: it remembers the highest log position it has
// seen and, on reconnecting, asks for what it missed with ?after=<position>. Frames may repeat,
// so the pages apply them idempotently (replace by order id).
(function () {
  "use strict";

  const MAX_BACKOFF_MS = 10000;
  const TOO_SLOW = 4008; // the server dropped us for lagging: reconnect from our position
  const BAD_REQUEST = 4400;

  // "<transaction>.<position>" as a pair of integers; BigInt because transaction ids are 64-bit.
  function parsePosition(text) {
    const match = /^(\d+)\.(\d+)$/.exec(String(text));
    return match ? [BigInt(match[1]), BigInt(match[2])] : null;
  }

  function isAfter(candidate, current) {
    if (current === null) return true;
    if (candidate[0] !== current[0]) return candidate[0] > current[0];
    return candidate[1] > current[1];
  }

  class LiveOrders {
    // options: path ("/ws/orders/"), indicator (element), onOrder(order), onStale(orderId),
    // onResync() (called on an open without a known position: reload over REST).
    constructor(options) {
      this.options = options;
      this.indicator = options.indicator;
      this.socket = null;
      this.position = null;
      this.positionText = "";
      this.failures = 0;
      this.connections = 0;
      this.attempts = 0;
      this.paused = false;
      this.loadedOffline = false;
      this.timer = null;
    }

    start() {
      this.connect();
    }

    pause() {
      this.paused = true;
      clearTimeout(this.timer);
      if (this.socket) this.socket.close(1000, "paused");
      this.setState("paused");
    }

    resume() {
      if (!this.paused) return;
      this.paused = false;
      this.connect();
    }

    url() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const after = this.positionText ? "?after=" + encodeURIComponent(this.positionText) : "";
      return scheme + "//" + window.location.host + this.options.path + after;
    }

    connect() {
      this.setState(this.attempts === 0 ? "connecting" : "reconnecting");
      this.attempts += 1;
      const socket = new WebSocket(this.url());
      let opened = false;
      this.socket = socket;
      socket.addEventListener("open", () => {
        opened = true;
        this.failures = 0;
        this.connections += 1;
        this.setState("live");
        // Without a position the server cannot replay what we missed: ask REST instead.
        if (this.position === null) this.options.onResync();
      });
      socket.addEventListener("message", (event) => this.receive(event.data));
      socket.addEventListener("close", (event) => {
        if (this.socket !== socket) return;
        this.socket = null;
        if (!this.paused) this.closed(event.code, opened);
      });
    }

    receive(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (error) {
        return;
      }
      if (!frame || frame.type !== "order.updated" || !frame.order) return;
      const position = parsePosition(frame.position);
      if (position && isAfter(position, this.position)) {
        this.position = position;
        this.positionText = frame.position;
        this.indicator.dataset.position = frame.position;
      }
      if (frame.truncated) this.options.onStale(frame.order.id);
      else this.options.onOrder(frame.order);
    }

    closed(code, opened) {
      if (code === BAD_REQUEST) {
        // Most likely a position the server cannot read: start over from REST.
        this.position = null;
        this.positionText = "";
      }
      if (!opened) {
        // Show what REST has even while live updates cannot start.
        if (this.connections === 0 && !this.loadedOffline) {
          this.loadedOffline = true;
          this.options.onResync();
        }
        this.refusedOrDown();
        return;
      }
      this.retry(code === TOO_SLOW ? 0 : this.backoff());
    }

    // A refused handshake means not signed in (any more); a server that is down answers
    // nothing at all. Only the REST API can tell the two apart.
    refusedOrDown() {
      fetch(this.options.probeUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => {
          if (response.status === 401 || response.status === 403) this.setState("signed-out");
          else this.retry(this.backoff());
        })
        .catch(() => this.retry(this.backoff()));
    }

    backoff() {
      this.failures += 1;
      const ceiling = Math.min(MAX_BACKOFF_MS, 500 * 2 ** (this.failures - 1));
      return ceiling / 2 + Math.random() * (ceiling / 2);
    }

    retry(delay) {
      this.setState("reconnecting");
      clearTimeout(this.timer);
      this.timer = setTimeout(() => {
        if (!this.paused) this.connect();
      }, delay);
    }

    setState(state) {
      const labels = {
        connecting: "connecting…",
        live: "live",
        reconnecting: "reconnecting…",
        paused: "paused",
        "signed-out": "signed out",
      };
      this.indicator.dataset.state = state;
      this.indicator.dataset.connections = String(this.connections);
      this.indicator.textContent = labels[state] || state;
    }
  }

  function sameOrigin(url) {
    const parsed = new URL(url, window.location.href);
    return parsed.pathname + parsed.search;
  }

  // Reads every page of a paginated list (DRF's {"results", "next"}), up to `maxPages`.
  async function fetchAllPages(url, maxPages) {
    const results = [];
    let next = url;
    for (let page = 0; next && page < maxPages; page += 1) {
      const response = await fetch(next, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("GET " + next + " answered " + response.status);
      const body = await response.json();
      results.push(...body.results);
      // DRF builds `next` from the request's host and scheme, which a TLS-terminating proxy
      // may have rewritten: follow it on this page's origin.
      next = body.next ? sameOrigin(body.next) : null;
    }
    return results;
  }

  async function fetchJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("GET " + url + " answered " + response.status);
    return response.json();
  }

  // Helpers for rendering: safe DOM building (text only, never HTML from data).
  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function shortId(id) {
    return String(id).slice(0, 8);
  }

  // A newer read model has a longer history (every applied event adds one entry), so an
  // older snapshot arriving late (REST racing the socket) never overwrites a newer one.
  function isStale(incoming, shown) {
    return Boolean(shown) && (incoming.history || []).length < (shown.history || []).length;
  }

  window.OrderLive = { LiveOrders, fetchAllPages, fetchJson, element, shortId, isStale, parsePosition, isAfter };
})();
