"use strict";
// The report's behaviour: decode the embedded tables, fill the selectors, draw
// the Vega-Lite charts and the HTML tables, and redraw them on every change.
(function () {
  const P = JSON.parse(document.getElementById("clfeval-data").textContent);
  const M = P.meta;
  const SIGNAL = "sel_";

  function decode(cols) {
    const names = Object.keys(cols);
    if (!names.length) return [];
    const first = cols[names[0]];
    const n = Array.isArray(first) ? first.length : first.i.length;
    const rows = Array.from({ length: n }, () => ({}));
    for (const name of names) {
      const c = cols[name];
      if (Array.isArray(c)) for (let r = 0; r < n; r++) rows[r][name] = c[r];
      else for (let r = 0; r < n; r++) rows[r][name] = c.i[r] < 0 ? null : c.d[c.i[r]];
    }
    return rows;
  }
  const T = {};
  for (const [name, cols] of Object.entries(P.tables)) T[name] = decode(cols);

  const first = (xs) => (xs && xs.length ? xs[0] : null);
  const last = (xs) => (xs && xs.length ? xs[xs.length - 1] : null);
  const state = {
    granularity: first(M.granularities),
    window: last(M.windows[first(M.granularities)]),
    slice: "overall",
    threshold: first(M.thresholds),
    cls: first(M.classes),
    metric: first(M.headline),
    champion: M.champion,
  };

  // ---- formatting -------------------------------------------------------
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  function num(v, digits = 4) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (Number.isInteger(v) && Math.abs(v) >= 1) return v.toLocaleString("en-US");
    return v.toFixed(digits);
  }
  function withCi(row) {
    if (!row) return "–";
    const ci = row.ci_lower === null ? "" : ` <span class="ci">[${num(row.ci_lower)}, ${num(row.ci_upper)}]</span>`;
    return num(row.value) + ci;
  }
  function delta(a, b) {
    if (!a || !b || a.value === null || b.value === null) return "";
    const d = a.value - b.value;
    const cls = d > 0 ? "up" : d < 0 ? "down" : "";
    return `<span class="${cls}">${d >= 0 ? "+" : ""}${d.toFixed(4)}</span>`;
  }
  const isThresholdMetric = (metric) => T.metrics.some((r) => r.metric === metric && r.threshold !== null);
  const thresholdMetric = new Map(M.headline.concat(M.slice_metrics).map((m) => [m, isThresholdMetric(m)]));
  const label = (metric) => (thresholdMetric.get(metric) && state.threshold !== null ? `${metric} @ ${state.threshold}` : metric);

  // ---- lookups ----------------------------------------------------------
  const key = (...parts) => parts.join("\u0001");
  const index = new Map();
  for (const r of T.metrics) index.set(key(r.version, r.slice, r.granularity, r.window, r.metric, r.threshold), r);
  function metricRow(version, slice, granularity, window, metric) {
    const t = thresholdMetric.get(metric) ? state.threshold : null;
    return index.get(key(version, slice, granularity, window, metric, t));
  }
  function previousWindow(granularity, window) {
    const ws = M.windows[granularity] || [];
    const i = ws.indexOf(window);
    return i > 0 ? ws[i - 1] : null;
  }

  // ---- sortable tables --------------------------------------------------
  const sorts = {};
  function sortableTable(id, columns, rows, defaultSort) {
    // columns: [{name, text(row) -> html, sort(row) -> number|string}]
    const s = sorts[id] || (sorts[id] = defaultSort);
    const col = columns.find((c) => c.name === s.name) || columns[0];
    const sorted = rows.slice().sort((a, b) => {
      const x = col.sort(a), y = col.sort(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * (s.asc ? 1 : -1);
    });
    const head = columns.map((c) => `<th data-col="${esc(c.name)}" class="${c.name === col.name ? (s.asc ? "sorted-asc" : "sorted-desc") : ""}">${esc(c.name)}</th>`).join("");
    const body = sorted.map((r) => `<tr class="${r._alert ? "alert-row" : ""}">${columns.map((c) => `<td>${c.text(r)}</td>`).join("")}</tr>`).join("");
    const el = document.getElementById(id);
    el.innerHTML = rows.length
      ? `<div class="scroll"><table class="t sortable" id="${id}-table"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>`
      : "<p>No rows for this selection.</p>";
    el.querySelectorAll("th").forEach((th) => th.addEventListener("click", () => {
      const name = th.dataset.col;
      sorts[id] = { name, asc: sorts[id].name === name ? !sorts[id].asc : true };
      sortableTable(id, columns, rows, defaultSort);
    }));
  }

  // ---- HTML parts -------------------------------------------------------
  function drawHeadline() {
    const { granularity: g, window: w, slice } = state;
    const prev = previousWindow(g, w);
    const versions = M.versions;
    document.getElementById("headline-sub").textContent =
      `(${slice}; ${g} window ${w}${prev ? `, previous ${prev}` : ""}${M.thresholds.length ? `; threshold ${state.threshold}` : ""})`;
    const head = ["metric"].concat(...versions.map((v) => [v, `Δ prev`].concat(v === state.champion ? [] : [`Δ vs ${state.champion}`])));
    const rows = M.headline.map((metric) => {
      const cells = [esc(label(metric))];
      for (const v of versions) {
        const r = metricRow(v, slice, g, w, metric);
        cells.push(withCi(r), prev ? delta(r, metricRow(v, slice, g, prev, metric)) : "");
        if (v !== state.champion) cells.push(delta(r, metricRow(state.champion, slice, g, w, metric)));
      }
      return cells;
    });
    const counts = ["rows"], weights = ["weight total"];
    for (const v of versions) {
      const any = T.metrics.find((r) => r.version === v && r.slice === slice && r.granularity === g && r.window === w);
      counts.push(any ? num(any.n_rows) : "–", "");
      weights.push(any ? num(any.weight_total, 1) : "–", "");
      if (v !== state.champion) { counts.push(""); weights.push(""); }
    }
    rows.push(counts);
    if (M.weighted) rows.push(weights);
    document.getElementById("headline").innerHTML =
      `<table class="t" id="headline-table"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead>` +
      `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
  }

  function alertKeys() {
    const keys = new Set();
    for (const a of T.alerts) keys.add(key(a.version, a.slice, a.granularity, a.window));
    return keys;
  }
  const fired = alertKeys();

  function drawSlices() {
    const { granularity: g, window: w } = state;
    const groups = new Map();
    for (const r of T.metrics) {
      if (r.granularity !== g || r.window !== w || !M.slice_metrics.includes(r.metric)) continue;
      if (r.threshold !== null && r.threshold !== state.threshold) continue;
      const k = key(r.version, r.slice);
      if (!groups.has(k)) groups.set(k, { version: r.version, slice: r.slice, rows: r.n_rows, _alert: fired.has(key(r.version, r.slice, g, w)) });
      const row = groups.get(k);
      row[r.metric] = r;
      row.rows = Math.max(row.rows, r.n_rows);
    }
    const metrics = M.slice_metrics.filter((m) => [...groups.values()].some((row) => row[m]));
    const columns = [
      { name: "version", text: (r) => esc(r.version), sort: (r) => r.version },
      { name: "slice", text: (r) => esc(r.slice), sort: (r) => r.slice },
      { name: "rows", text: (r) => num(r.rows), sort: (r) => r.rows },
    ].concat(metrics.map((m) => ({ name: label(m), text: (r) => withCi(r[m]), sort: (r) => (r[m] ? r[m].value : null) })));
    const primary = metrics[0] ? label(metrics[0]) : "rows";
    sortableTable("slices", columns, [...groups.values()], { name: primary, asc: true });
  }

  function drawPerClass() {
    document.getElementById("sec-per-class").hidden = !M.per_class;
    if (!M.per_class) return;
    const { granularity: g, window: w } = state;
    const groups = new Map();
    for (const r of T.per_class) {
      if (r.granularity !== g || r.window !== w) continue;
      const k = key(r.class_label, r.version);
      if (!groups.has(k)) groups.set(k, { class: r.class_label, version: r.version });
      groups.get(k)[r.metric] = r;
    }
    const columns = [
      { name: "class", text: (r) => esc(r.class), sort: (r) => M.classes.indexOf(r.class) },
      { name: "version", text: (r) => esc(r.version), sort: (r) => r.version },
    ].concat(M.per_class_metrics.map((m) => ({ name: m, text: (r) => withCi(r[m]), sort: (r) => (r[m] ? r[m].value : null) })));
    sortableTable("per-class", columns, [...groups.values()], { name: "class", asc: true });
  }

  function drawOperatingPoints() {
    const { granularity: g, window: w } = state;
    const rows = T.points.filter((p) => p.granularity === g && p.window === w && (p.class_label === state.cls || !M.per_class));
    const byKey = new Map();
    for (const p of rows) {
      const k = key(p.version, p.class_label, p.label);
      if (!byKey.has(k)) byKey.set(k, { version: p.version, cls: p.class_label, kind: p.kind, label: p.label });
      byKey.get(k)[p.curve] = p;
    }
    const columns = [
      { name: "version", text: (r) => esc(r.version), sort: (r) => r.version },
      { name: "operating point", text: (r) => esc(r.label), sort: (r) => r.label },
      { name: "kind", text: (r) => esc(r.kind), sort: (r) => r.kind },
      { name: "FPR", text: (r) => num(r.roc ? r.roc.x : null), sort: (r) => (r.roc ? r.roc.x : null) },
      { name: "TPR (recall)", text: (r) => num(r.roc ? r.roc.y : null), sort: (r) => (r.roc ? r.roc.y : null) },
      { name: "precision", text: (r) => num(r.pr ? r.pr.y : null), sort: (r) => (r.pr ? r.pr.y : null) },
    ];
    if (M.per_class) columns.splice(1, 0, { name: "class", text: (r) => esc(r.cls), sort: (r) => r.cls });
    sortableTable("operating", columns, [...byKey.values()], { name: "version", asc: true });
  }

  function drawTexts() {
    const { granularity: g, window: w } = state;
    const parts = [];
    for (const v of M.versions) {
      for (const m of ["ece", "top_label_ece"]) {
        const r = index.get(key(v, "overall", g, w, m, null));
        if (r) parts.push(`${esc(v)} ${m.toUpperCase().replace("TOP_LABEL_ECE", "top-label ECE")} ${withCi(r)}`);
      }
      if (M.per_class) {
        const r = T.per_class.find((x) => x.version === v && x.granularity === g && x.window === w && x.metric === "ece" && x.class_label === state.cls);
        if (r) parts.push(`${esc(v)} ECE of class ${esc(state.cls)} ${withCi(r)}`);
      }
    }
    document.getElementById("ece").innerHTML = parts.length ? "Expected calibration error: " + parts.join("; ") + "." : "No ECE rows for this window.";
    const coverage = T.rejected.filter((r) => r.metric === "label_coverage" && r.granularity === g && r.window === w);
    const rejected = T.rejected.filter((r) => r.metric === "rejected_rows" && r.granularity === g && r.window === w);
    const total = new Map();
    for (const r of rejected) total.set(r.version, (total.get(r.version) || 0) + (r.value || 0));
    let text = coverage.length
      ? "Label coverage: " + coverage.map((r) => `${esc(r.version)} ${num(r.value)}`).join("; ") + ". "
      : "No label_coverage rows: no [labels] table is configured, so every evaluated row came with its label. ";
    text += rejected.length
      ? "Rows rejected: " + [...total].map(([v, n]) => `${esc(v)} ${num(n)}`).join("; ") + "."
      : "No rows rejected in this window.";
    document.getElementById("coverage").innerHTML = text;
    document.getElementById("confusion-sub").textContent =
      `(overall slice, ${g} window ${w}${M.thresholds.length ? `, threshold ${state.threshold}: positive iff score ≥ threshold` : ""}; rows, and the share of each actual label's rows)`;
  }

  function drawAlerts() {
    const columns = ["rule", "version", "slice", "granularity", "window", "metric", "class_label", "threshold", "value", "condition", "limit", "change"]
      .map((c) => ({ name: c, text: (r) => (typeof r[c] === "number" ? num(r[c]) : esc(r[c] === null ? "" : r[c])), sort: (r) => r[c] }));
    if (!T.alerts.length) document.getElementById("alerts").innerHTML = "<p>No alert fired in the windows shown.</p>";
    else sortableTable("alerts", columns, T.alerts, { name: "window", asc: false });
  }

  function drawHtml() {
    drawHeadline();
    drawSlices();
    drawPerClass();
    drawOperatingPoints();
    drawTexts();
  }

  // ---- selectors --------------------------------------------------------
  function fill(id, values, current, text) {
    const el = document.getElementById(id);
    el.innerHTML = values.map((v) => `<option value="${esc(v)}"${String(v) === String(current) ? " selected" : ""}>${esc(text ? text(v) : v)}</option>`).join("");
  }
  function fillAll() {
    fill("sel-granularity", M.granularities, state.granularity);
    fill("sel-window", M.windows[state.granularity] || [], state.window);
    fill("sel-slice", M.slices, state.slice);
    fill("sel-threshold", M.thresholds, state.threshold);
    fill("sel-cls", M.classes, state.cls);
    fill("sel-metric", M.headline, state.metric);
    fill("sel-champion", M.versions, state.champion);
    document.getElementById("label-threshold").hidden = !M.thresholds.length;
    document.getElementById("label-cls").hidden = !M.classes.length;
  }

  // ---- charts -----------------------------------------------------------
  const views = {};
  const SIGNALS = ["granularity", "window", "slice", "threshold", "cls", "metric"];
  function datasetsOf(spec) {
    const names = new Set();
    JSON.stringify(spec, (k, v) => { if (k === "data" && v && typeof v.name === "string") names.add(v.name); return v; });
    const out = {};
    for (const n of names) out[n] = T[n].map((r) => Object.assign({}, r)); // each view its own rows
    return out;
  }
  function embedAll() {
    const trends = document.getElementById("trends");
    for (const g of M.granularities) {
      const div = document.createElement("div");
      div.id = `trend-${g}`;
      div.className = "chart";
      trends.appendChild(div);
    }
    const jobs = Object.entries(P.specs).map(([id, spec]) => {
      const full = Object.assign({}, spec, { datasets: datasetsOf(spec) });
      return vegaEmbed(`#${CSS.escape(id)}`, full, { renderer: "canvas", actions: false, logLevel: 1 /* vega.Error: warnings of empty layers stay quiet */ }).then((r) => { views[id] = r.view; });
    });
    return Promise.all(jobs);
  }
  async function update() {
    drawHtml();
    await Promise.all(Object.values(views).map((view) => {
      for (const s of SIGNALS) view.signal(SIGNAL + s, state[s]);
      return view.runAsync();
    }));
  }
  async function set(name, value) {
    if (name === "threshold") value = value === null ? null : Number(value);
    state[name] = value;
    if (name === "granularity") {
      const ws = M.windows[value] || [];
      if (!ws.includes(state.window)) state.window = last(ws.filter((w) => w <= state.window)) || last(ws);
      fill("sel-window", ws, state.window);
    }
    await update();
  }
  for (const name of Object.keys(state)) {
    const el = document.getElementById(`sel-${name}`);
    el.addEventListener("change", () => { window.clfeval.pending = set(name, el.value); });
  }

  fillAll();
  drawHtml();
  drawAlerts();
  window.clfeval = { state, views, set, tables: T, meta: M, pending: null, ready: embedAll().then(update) };
})();
