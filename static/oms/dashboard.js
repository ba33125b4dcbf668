/*
 * The operations dashboard on the admin's front page (templates/admin/index.html).
 *
 * Fetches the dashboard document (oms.dashboard) and draws it: today's work (each carrier
 * cut-off of each warehouse with a countdown and its capacity forecast, orders at risk, holds, returns close to their
 * 48 hours, sync health), then each account-health metric against its threshold with its
 * last 90 days charted by Chart.js (static/vendor/chartjs/). Refreshes every minute; the
 * countdowns tick every second. Text from the server is always set as text, never as HTML.
 *
 * The charts are kept in window.omsDashboard.charts (one entry per metric row), so a
 * browser test can check they were drawn with data.
 */
(function () {
  "use strict";

  var REFRESH_MS = 60 * 1000;
  var state = { charts: [], countdowns: [], loaded: 0, error: null };
  window.omsDashboard = state;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function link(href, text) {
    return href ? el("a", { href: href, text: text }) : el("span", { text: text });
  }

  function pct(value) {
    return value === null || value === undefined ? "–" : (value * 100).toFixed(2) + "%";
  }

  function when(iso) {
    if (!iso) return "never";
    var date = new Date(iso);
    return date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  function duration(ms) {
    var negative = ms < 0;
    var s = Math.floor(Math.abs(ms) / 1000);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var text = (h ? h + "h " : "") + String(m).padStart(h ? 2 : 1, "0") + "m " +
      String(s % 60).padStart(2, "0") + "s";
    return negative ? text + " ago" : text;
  }

  function card(title, wide) {
    var node = el("div", { className: "ops-card" + (wide ? " ops-wide" : "") }, [
      el("h3", { text: title }),
    ]);
    return node;
  }

  function table(headers, rows) {
    var head = el("tr", {}, headers.map(function (h) {
      return el("th", { text: h.text || h, className: h.num ? "num" : "" });
    }));
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, rows)]);
  }

  function cell(content, num) {
    var td = el("td", { className: num ? "num" : "" });
    td.appendChild(typeof content === "string" || typeof content === "number"
      ? document.createTextNode(String(content)) : content);
    return td;
  }

  // ----- today -----------------------------------------------------------------------

  // The pickup's time in the warehouse's own zone, where the carrier comes.
  function localTime(iso, zone) {
    try {
      return new Date(iso).toLocaleString([], { weekday: "short", hour: "2-digit",
        minute: "2-digit", timeZone: zone, timeZoneName: "short" });
    } catch (e) {
      return when(iso);
    }
  }

  // One card per carrier cut-off of each warehouse, with its own countdown.
  function capacityCards(items) {
    return items.map(function (c) {
      var carrier = c.carrier.charAt(0).toUpperCase() + c.carrier.slice(1);
      var box = card(carrier + " pickup · " + c.warehouse);
      box.setAttribute("data-warehouse", c.code);
      box.setAttribute("data-pickup", c.pickup);
      var countdown = el("span", { className: "ops-countdown" });
      state.countdowns.push({ node: countdown, at: c.pack_deadline });
      box.appendChild(el("div", {}, [
        el("span", { className: "ops-big", text: String(c.to_pack) }),
        " orders to pack for " + c.pickup_day + " pickup",
      ]));
      box.appendChild(el("div", {}, ["Packing closes in ", countdown,
        el("span", { className: "ops-muted",
          text: " (" + c.carrier + " cut-off " + localTime(c.pickup_at, c.time_zone) + ")" })]));
      box.appendChild(el("div", { className: "ops-muted",
        text: c.rate_per_hour + " orders/h over " + c.worked_hours + " h worked; " +
          c.capacity + " can be packed in time" }));
      box.appendChild(el("p", { className: c.misses ? "ops-bad" : "ops-good",
        text: c.message }));
      if (c.overdue) {
        box.appendChild(el("div", { className: "ops-warn",
          text: c.overdue + " already past their pack-by" }));
      }
      box.appendChild(link(c.orders_url, "Orders to pack"));
      return box;
    });
  }

  function atRiskCard(risk) {
    var box = card("Orders at risk");
    box.appendChild(el("div", {}, [
      el("span", { className: "ops-big" + (risk.due_soon ? " ops-warn" : ""),
        text: String(risk.due_soon) }),
      " due to ship in the next " + risk.hours + " h, not yet confirmed to the channel",
    ]));
    box.appendChild(link(risk.due_soon_url, "Show them"));
    box.appendChild(el("div", {}, [
      el("span", { className: "ops-big" + (risk.late ? " ops-bad" : ""),
        text: String(risk.late) }),
      " past their ship-by, still in the warehouse",
    ]));
    box.appendChild(link(risk.late_url, "Show them"));
    return box;
  }

  function holdsCard(holds) {
    var box = card("On hold");
    if (!holds.length) {
      box.appendChild(el("p", { className: "ops-good", text: "Nothing on hold." }));
      return box;
    }
    box.appendChild(table(["Reason", { text: "Orders", num: true }], holds.map(function (h) {
      return el("tr", {}, [cell(link(h.url, h.label)), cell(h.count, true)]);
    })));
    return box;
  }

  function returnsCard(returns) {
    var box = card("Returns close to 48 hours");
    box.appendChild(el("div", {}, [
      el("span", { className: "ops-big" + (returns.overdue ? " ops-bad" : ""),
        text: String(returns.overdue) }),
      " past 48 hours, ",
      el("span", { className: "ops-big" + (returns.due_soon ? " ops-warn" : ""),
        text: String(returns.due_soon) }),
      " due within " + returns.hours + " h",
    ]));
    if (returns.items.length) {
      box.appendChild(table(["RMA", "Channel", "Answer by"], returns.items.map(function (r) {
        var countdown = el("span", { className: "ops-countdown" });
        state.countdowns.push({ node: countdown, at: r.respond_by });
        return el("tr", {}, [cell(link(r.url, r.rma)), cell(r.channel), cell(countdown)]);
      })));
    }
    if (returns.url) box.appendChild(link(returns.url, "All unanswered returns"));
    return box;
  }

  function syncCard(rows) {
    var box = card("Sync health", true);
    box.appendChild(table(
      ["Channel", { text: "Backlog", num: true }, "Oldest waiting",
        { text: "Failed pushes", num: true }, "Last success",
        { text: "Failures 24 h", num: true }, { text: "Drift 24 h", num: true }, "Last error"],
      rows.map(function (r) {
        var bad = r.failed_pushes || r.failures_24h;
        return el("tr", { "data-channel": r.channel }, [
          cell(link(r.url, r.channel + (r.enabled ? "" : " (disabled)"))),
          cell(r.backlog, true),
          cell(r.oldest_pending_at ? when(r.oldest_pending_at) : "–"),
          cell(el("span", { className: r.failed_pushes ? "ops-bad" : "",
            text: String(r.failed_pushes) }), true),
          cell(when(r.last_success_at)),
          cell(el("span", { className: bad ? "ops-bad" : "", text: String(r.failures_24h) }),
            true),
          cell(el("span", { className: r.drift_24h ? "ops-warn" : "",
            text: String(r.drift_24h) }), true),
          cell(el("span", { className: "ops-muted", text: r.last_error || "" })),
        ]);
      })));
    return box;
  }

  // ----- account health ------------------------------------------------------------------

  var STATUS_TEXT = { ok: "OK", warning: "Close", breached: "Breached", no_data: "No data" };

  function chart(canvas, metric, days) {
    if (typeof window.Chart === "undefined") return null;
    var values = metric.series;
    var datasets = [{
      label: metric.label,
      data: values.map(function (v) { return v === null ? null : v * 100; }),
      borderColor: "#2563eb",
      backgroundColor: "rgba(37, 99, 235, 0.15)",
      borderWidth: 1.5,
      pointRadius: values.filter(function (v) { return v !== null; }).length < 3 ? 2 : 0,
      fill: true,
      spanGaps: true,
    }];
    if (metric.threshold !== null) {
      datasets.push({
        label: "threshold",
        data: values.map(function () { return metric.threshold * 100; }),
        borderColor: "#b91c1c",
        borderDash: [4, 3],
        borderWidth: 1,
        pointRadius: 0,
        fill: false,
      });
    }
    return new window.Chart(canvas, {
      type: "line",
      data: { labels: days, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: function (ctx) { return ctx.dataset.label + ": " + ctx.parsed.y.toFixed(2) + "%"; },
            },
          },
        },
        scales: {
          x: { display: false },
          y: { display: true, ticks: { maxTicksLimit: 3, font: { size: 9 } } },
        },
      },
    });
  }

  function healthSection(data) {
    var root = document.getElementById("ops-health");
    var metrics = data.metrics || [];
    var section = card("Account health (last 90 days)", true);
    section.id = "ops-metrics";
    if (!metrics.length) {
      section.appendChild(el("p", { className: "ops-muted",
        text: "No figures yet: the health check runs every few minutes." }));
      root.appendChild(section);
      return;
    }
    var groups = {};
    var order = [];
    metrics.forEach(function (m) {
      var key = m.channel + " · " + m.program;
      if (!groups[key]) { groups[key] = []; order.push(key); }
      groups[key].push(m);
    });
    order.forEach(function (key) {
      var first = groups[key][0];
      section.appendChild(el("div", { className: "ops-program",
        text: key + (first.marketplace ? " (" + first.marketplace + ")" : "") }));
      var rows = groups[key].map(function (m) {
        var canvas = el("canvas", { "aria-label": m.label + " over 90 days", role: "img" });
        var holder = el("div", { className: "ops-chart" }, [canvas]);
        var row = el("tr", { "data-metric": m.metric, "data-program": m.program,
          "data-channel": m.channel }, [
          cell(m.label),
          cell(el("span", { className: "ops-badge ops-badge-" + m.status,
            text: STATUS_TEXT[m.status] || m.status })),
          cell(pct(m.value), true),
          cell(m.threshold_text),
          cell(link(m.against_url, m.against + " / " + m.denominator + " " + m.unit), true),
          cell(el("span", {}, [
            el("span", { text: m.message }),
            m.at_risk ? el("span", {}, [" ", link(m.at_risk_url, "(at risk)")]) : null,
          ])),
          cell(holder),
        ]);
        state.pending.push({ canvas: canvas, metric: m });
        return row;
      });
      section.appendChild(table(["Metric", "Status", { text: "Rate", num: true }, "Threshold",
        { text: "Counting against", num: true }, "Headroom", "Last 90 days"], rows));
    });
    root.appendChild(section);
  }

  function fbaSection(data) {
    var rows = data.fba || [];
    if (!rows.length) return;
    var box = card("FBA stock held by Amazon", true);
    box.appendChild(table(["Channel", { text: "Units held", num: true },
      { text: "Days of cover", num: true }, { text: "Sold (30 d)", num: true },
      { text: "Unfulfillable", num: true }, { text: "Stranded", num: true }],
    rows.map(function (f) {
      var cover = f.fba_days_of_cover;
      return el("tr", {}, [
        cell(f.channel),
        cell(f.fba_units === undefined ? "–" : String(f.fba_units), true),
        cell(el("span", { className: cover !== null && cover < 14 ? "ops-warn" : "",
          text: cover === null || cover === undefined ? "no sales" : cover.toFixed(1) }), true),
        cell(f.units_sold === undefined ? "–" : String(f.units_sold), true),
        cell(String(f.fba_unfulfillable || 0), true),
        cell(el("span", { className: f.fba_stranded ? "ops-warn" : "",
          text: String(f.fba_stranded || 0) }), true),
      ]);
    })));
    document.getElementById("ops-health").appendChild(box);
  }

  function reportSection(data) {
    var rows = data.report_checks || [];
    if (!rows.length) return;
    var box = card("Our figures against the channel's own report", true);
    box.appendChild(table(["Channel", "Metric", "", "Range", { text: "Ours", num: true },
      { text: "Channel's", num: true }, { text: "Difference", num: true }],
    rows.map(function (r) {
      var diff = r.difference;
      return el("tr", {}, [
        cell(r.channel), cell(r.metric), cell(r.fulfillment),
        cell(when(r.date_from) + " – " + when(r.date_to)),
        cell(pct(r.ours) + " (" + r.our_counts.join("/") + ")", true),
        cell(pct(r.theirs) + " (" + r.their_counts.join("/") + ")", true),
        cell(el("span", { className: diff ? "ops-warn" : "",
          text: diff === null ? "–" : (diff * 100).toFixed(2) + " pt" }), true),
      ]);
    })));
    document.getElementById("ops-health").appendChild(box);
  }

  function alertsBanner(alerts) {
    var root = document.getElementById("ops-alerts");
    if (!alerts || !alerts.length) return;
    root.appendChild(el("div", { className: "ops-alerts" }, [
      el("strong", { text: alerts.length + " account-health alert(s)" }),
      el("ul", {}, alerts.map(function (a) {
        return el("li", {}, [link(a.url, a.channel + " " + a.program + ": " + a.message)]);
      })),
    ]));
  }

  // ----- drawing ---------------------------------------------------------------------------

  function tick() {
    var now = Date.now();
    state.countdowns.forEach(function (c) {
      var left = new Date(c.at).getTime() - now;
      c.node.textContent = duration(left);
      c.node.className = "ops-countdown " + (left < 0 ? "ops-bad" : left < 3600e3 ? "ops-warn" : "");
    });
  }

  function draw(data) {
    state.charts.forEach(function (c) { if (c) c.destroy(); });
    state.charts = [];
    state.countdowns = [];
    state.pending = [];
    ["ops-alerts", "ops-today", "ops-health"].forEach(function (id) {
      document.getElementById(id).replaceChildren();
    });
    var today = document.getElementById("ops-today");
    alertsBanner(data.alerts);
    if (data.capacity) capacityCards(data.capacity).forEach(function (c) { today.appendChild(c); });
    if (data.at_risk) today.appendChild(atRiskCard(data.at_risk));
    if (data.holds) today.appendChild(holdsCard(data.holds));
    if (data.returns) today.appendChild(returnsCard(data.returns));
    if (data.sync && data.sync.length) today.appendChild(syncCard(data.sync));
    if (data.metrics) healthSection(data);
    fbaSection(data);
    reportSection(data);
    state.pending.forEach(function (p) {
      var instance = chart(p.canvas, p.metric, data.days);
      if (instance) {
        instance.$omsMetric = { metric: p.metric.metric, channel: p.metric.channel,
          program: p.metric.program };
        state.charts.push(instance);
      }
    });
    state.pending = [];
    tick();
  }

  function load() {
    var root = document.getElementById("ops-dashboard");
    var status = document.getElementById("ops-status");
    fetch(root.getAttribute("data-url"), { credentials: "same-origin",
      headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        draw(data);
        state.loaded += 1;
        state.error = null;
        status.textContent = "Updated " + when(data.now) + " · refreshes every minute";
        root.setAttribute("data-loaded", String(state.loaded));
      })
      .catch(function (err) {
        state.error = String(err);
        status.textContent = "The dashboard could not be loaded (" + err.message + "); retrying.";
        status.className = "ops-bad";
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.getElementById("ops-dashboard")) return;
    load();
    setInterval(load, REFRESH_MS);
    setInterval(tick, 1000);
  });
})();
