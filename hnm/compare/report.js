/* compare.html: draws the embedded Plotly figures and the per-query view.
   Data comes from the JSON block #hnm-data; every text from it reaches the page through
   textContent (never innerHTML), and reaches Plotly's labels entity-escaped. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("hnm-data").textContent);
  var report = data.report || {};
  var colors = data.colors || {};
  var config = { responsive: true, displaylogo: false, toImageButtonOptions: { scale: 2 } };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function plotlyText(s) {  // Plotly reads a few tags in labels: show them as text instead
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function num(x, sign) {
    if (typeof x !== "number" || !isFinite(x)) return "-";
    return (sign && x >= 0 ? "+" : "") + x.toFixed(4);
  }
  function short(s, n) { s = String(s).replace(/\s+/g, " ").trim(); return s.length > n ? s.slice(0, n - 1) + "…" : s; }

  /* Figures built in Python; mean ± std bands are shapes named band-<group>, hidden with their
     trace when the legend hides it. */
  function syncBands(node) {
    node.on("plotly_restyle", function () {
      var shown = {};
      node.data.forEach(function (t) {
        if (t.meta && t.meta.group !== undefined) shown[t.meta.group] = t.visible === undefined || t.visible === true;
      });
      var update = {};
      (node.layout.shapes || []).forEach(function (s, i) {
        var g = s.name && s.name.indexOf("band-") === 0 ? s.name.slice(5) : null;
        if (g !== null && g in shown && (s.visible !== false) !== shown[g]) update["shapes[" + i + "].visible"] = shown[g];
      });
      if (Object.keys(update).length) Plotly.relayout(node, update);
    });
  }
  Object.keys(data.figures || {}).forEach(function (id) {
    var node = document.getElementById(id);
    if (!node) return;
    var fig = data.figures[id];
    Plotly.newPlot(node, fig.data, fig.layout, config).then(function () { if (id === "curves-plot") syncBands(node); });
  });

  /* Per-query view */
  var pq = report.per_query;
  var root = document.getElementById("pq-root");
  if (!pq || !pq.queries || !pq.queries.length || !root) return;
  var queries = pq.queries, docs = pq.docs || {}, top = pq.top || {};
  var metric = pq.metric || "metric";
  var groups = (report.groups || []).filter(function (g) {
    return queries.some(function (q) { return q.values && typeof q.values[String(g.number)] === "number"; });
  });
  if (!groups.length) { root.appendChild(el("p", "empty", "no group has per-query values")); return; }
  var base = groups.filter(function (g) { return g.baseline; })[0] || groups[0];
  var others = groups.filter(function (g) { return g !== base; });
  var state = { group: others.length ? others[0] : base, query: null, order: [] };
  function val(q, g) { var v = q.values && q.values[String(g.number)]; return typeof v === "number" ? v : null; }
  function delta(q) { var a = val(q, base), b = val(q, state.group); return a === null || b === null ? null : b - a; }
  function gname(g) { return "#" + g.number + " " + (g.label || ""); }

  var controls = el("div", "pq-controls");
  var groupSel = el("select"); groupSel.id = "pq-group";
  others.forEach(function (g) { var o = el("option", null, gname(g)); o.value = String(g.number); groupSel.appendChild(o); });
  var groupLabel = el("label", null, "group on the y axis: "); groupLabel.appendChild(groupSel);
  if (others.length) controls.appendChild(groupLabel);
  var summary = el("span", "pq-summary"); summary.id = "pq-summary";
  controls.appendChild(summary);
  root.appendChild(controls);

  var top2 = el("div", "pq-top");
  var scatter = el("div", "pq-scatter"); scatter.id = "pq-scatter";
  var finder = el("div", "pq-finder");
  var search = el("input"); search.type = "search"; search.id = "pq-search";
  search.placeholder = "filter " + queries.length + " queries by id or text";
  var sortSel = el("select"); sortSel.id = "pq-sort";
  [["loss", "largest loss against the baseline first"], ["gain", "largest gain first"], ["qid", "in the report's order"]].forEach(function (o) {
    var opt = el("option", null, o[1]); opt.value = o[0]; sortSel.appendChild(opt);
  });
  var list = el("select", "pq-list"); list.id = "pq-list"; list.size = 18;
  var count = el("div", "muted");
  [search, sortSel, list, count].forEach(function (n) { finder.appendChild(n); });
  top2.appendChild(scatter); top2.appendChild(finder);
  root.appendChild(top2);
  var detail = el("div", "pq-detail"); detail.id = "pq-detail";
  root.appendChild(detail);

  function fillList() {
    var needle = search.value.trim().toLowerCase();
    var idx = [];
    for (var i = 0; i < queries.length; i++) {
      var q = queries[i];
      if (!needle || String(q.qid).toLowerCase().indexOf(needle) >= 0 || String(q.text || "").toLowerCase().indexOf(needle) >= 0) idx.push(i);
    }
    var key = sortSel.value;
    if (key !== "qid") {
      var sgn = key === "loss" ? 1 : -1;
      idx.sort(function (a, b) {
        var da = delta(queries[a]), db = delta(queries[b]);
        if (da === null) return 1; if (db === null) return -1;
        return sgn * (da - db) || a - b;
      });
    }
    var frag = document.createDocumentFragment();
    idx.forEach(function (i) {
      var q = queries[i], d = delta(q);
      var o = el("option", null, q.qid + "  " + (others.length ? "Δ " + num(d, true) + "  " : "") + short(q.text || "", 90));
      o.value = String(i);
      frag.appendChild(o);
    });
    list.textContent = "";
    list.appendChild(frag);
    count.textContent = idx.length + " of " + queries.length + " queries shown";
    if (state.query !== null) list.value = String(state.query);
    if (list.selectedIndex < 0) list.scrollTop = 0;
  }

  function drawScatter() {
    var g = state.group, xs = [], ys = [], ids = [], hover = [];
    var better = 0, worse = 0, tied = 0;
    queries.forEach(function (q, i) {
      var a = val(q, base), b = val(q, g);
      if (a === null || b === null) return;
      xs.push(a); ys.push(b); ids.push(i);
      hover.push(plotlyText(q.qid + ": " + short(q.text || "", 70)) + "<br>baseline " + a.toFixed(4) + " · group " + b.toFixed(4));
      if (b > a) better++; else if (b < a) worse++; else tied++;
    });
    summary.textContent = g === base ? "" : gname(g) + " is better than the baseline on " + better +
      " queries, worse on " + worse + ", tied on " + tied + " (" + metric + ", mean over seeds)";
    var all = xs.concat(ys), lo = Math.min.apply(null, all.concat([0])), hi = Math.max.apply(null, all.concat([1]));
    var pad = 0.03 * (hi - lo || 1);
    var color = colors[String(g.number)] || "#1f77b4";
    var traces = [
      { type: "scatter", mode: "markers", x: xs, y: ys, customdata: ids, hovertext: hover, hoverinfo: "text",
        marker: { size: 7, color: color, opacity: 0.45, line: { width: 0 } }, name: "queries" },
      { type: "scatter", mode: "markers", x: [], y: [], hoverinfo: "skip", name: "selected",
        marker: { size: 16, color: "rgba(0,0,0,0)", line: { width: 2.5, color: "#d62728" } } }];
    var layout = {
      height: 470, margin: { l: 60, r: 10, t: 30, b: 50 }, showlegend: false, hovermode: "closest",
      plot_bgcolor: "white", dragmode: "zoom",
      title: { text: "per-query " + plotlyText(metric) + " (" + plotlyText(pq.split || data.split) + ")", x: 0, xanchor: "left", font: { size: 13 } },
      xaxis: { title: { text: "baseline " + plotlyText(short(gname(base), 40)) }, range: [lo - pad, hi + pad], gridcolor: "#eee", zeroline: false },
      yaxis: { title: { text: plotlyText(short(gname(g), 40)) }, range: [lo - pad, hi + pad], gridcolor: "#eee", zeroline: false, scaleanchor: "x" },
      shapes: [{ type: "line", x0: lo - pad, y0: lo - pad, x1: hi + pad, y1: hi + pad, line: { color: "#888", dash: "dash", width: 1 } }],
      annotations: [{ x: hi, y: lo, xanchor: "right", yanchor: "bottom", showarrow: false, font: { size: 10, color: "#777" }, text: "below the diagonal: the group is worse" }]
    };
    return Plotly.react(scatter, traces, layout, config).then(markSelected);
  }

  function markSelected() {
    var q = state.query === null ? null : queries[state.query];
    var a = q && val(q, base), b = q && val(q, state.group);
    Plotly.restyle(scatter, { x: [a === null || !q ? [] : [a]], y: [b === null || !q ? [] : [b]] }, [1]);
  }

  function sameAs(q) {  // queries hidden under the same scatter point
    var a = val(q, base), b = val(q, state.group);
    return queries.filter(function (o) { return o !== q && val(o, base) === a && val(o, state.group) === b; })
      .map(function (o) { return o.qid; });
  }

  function docLine(id, rel, cls) {
    var li = el("li", cls);
    var text = docs[id];
    if (rel) li.appendChild(el("span", "check", "✓ "));
    li.appendChild(el("span", "docid", id));
    if (text !== undefined) { li.appendChild(el("span", "snippet", " " + short(text, 160))); li.title = text; }
    else li.appendChild(el("span", "snippet muted", " (text not in the report)"));
    li.addEventListener("click", function () { li.classList.toggle("open"); });
    return li;
  }

  function showQuery(i) {
    state.query = i;
    var q = queries[i];
    detail.textContent = "";
    var head = el("div", "pq-qhead");
    head.appendChild(el("span", "pq-qid", q.qid));
    head.appendChild(el("span", "muted", " query " + (i + 1) + " of " + queries.length));
    var same = sameAs(q);
    if (same.length) head.appendChild(el("span", "muted", " · the same values as " + same.length + " other " +
      (same.length > 1 ? "queries" : "query") + " (one point in the scatter): " + same.slice(0, 8).join(", ") + (same.length > 8 ? ", …" : "")));
    detail.appendChild(head);
    detail.appendChild(el("pre", "pq-text", q.text || ""));
    var rel = q.relevant || {};
    var relIds = Object.keys(rel);
    detail.appendChild(el("h3", null, "Relevant documents (" + relIds.length + ")"));
    var ul = el("ul", "pq-rel");
    relIds.forEach(function (d) {
      var li = el("li", "rel");
      li.appendChild(el("span", "docid", "✓ " + d));
      li.appendChild(el("span", "muted", "  relevance " + rel[d]));
      li.appendChild(el("pre", "doctext", docs[d] !== undefined ? docs[d] : "(text not in the report)"));
      ul.appendChild(li);
    });
    detail.appendChild(ul);
    detail.appendChild(el("h3", null, "Top 10 per group (✓ relevant; click a line for the whole text)"));
    var grid = el("div", "pq-grid");
    var order = [base, state.group].concat(groups.filter(function (g) { return g !== base && g !== state.group; }));
    order.filter(function (g, k) { return order.indexOf(g) === k; }).forEach(function (g) {
      var col = el("div", "pq-col"); col.setAttribute("data-group", String(g.number));
      col.style.borderTopColor = colors[String(g.number)] || "#999";
      col.appendChild(el("div", "pq-col-title", gname(g) + (g === base ? " (baseline)" : "")));
      var v = val(q, g), b = val(q, base), t = top[String(g.number)];
      col.appendChild(el("div", "pq-col-value", metric + " " + num(v) + (g !== base && v !== null && b !== null ? "  (Δ " + num(v - b, true) + ")" : "") +
        (t && t.seed !== undefined && t.seed !== null ? " · list from seed\u00a0" + t.seed : "")));
      var lst = t && t.lists ? t.lists[q.qid] : null;
      if (!lst) { col.appendChild(el("p", "muted", "no ranked list for this query")); grid.appendChild(col); return; }
      var ol = el("ol", "pq-top10");
      lst.slice(0, 10).forEach(function (d) { ol.appendChild(docLine(d, d in rel, d in rel ? "rel" : "")); });
      col.appendChild(ol);
      var missed = relIds.filter(function (d) { return lst.slice(0, 10).indexOf(d) < 0; });
      if (missed.length) col.appendChild(el("div", "missed", "relevant, not in the top 10: " + missed.join(", ")));
      grid.appendChild(col);
    });
    detail.appendChild(grid);
    if (list.value !== String(i)) list.value = String(i);
    markSelected();
  }

  groupSel.addEventListener("change", function () {
    state.group = others.filter(function (g) { return String(g.number) === groupSel.value; })[0] || base;
    fillList(); drawScatter();
    if (state.query !== null) showQuery(state.query);
  });
  search.addEventListener("input", fillList);
  sortSel.addEventListener("change", fillList);
  list.addEventListener("change", function () { if (list.value !== "") showQuery(Number(list.value)); });
  fillList();
  drawScatter().then(function () {
    scatter.on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (p && p.curveNumber === 0) showQuery(p.customdata);
    });
    if (list.options.length) showQuery(Number(list.options[0].value));
  });
})();
