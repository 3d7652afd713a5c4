/* precursor-xai report page: filter, sort and page the embedded sample rows; open a sample's details. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var byId = function (id) { return document.getElementById(id); };
  var ui = {
    model: byId("f-model"), head: byId("f-head"), cls: byId("f-class"), status: byId("f-status"),
    search: byId("f-search"), sort: byId("f-sort"), size: byId("f-size"), view: byId("f-view"),
    form: byId("filters"), out: byId("status"), prev: byId("prev"), next: byId("next"), label: byId("page-label"),
    gallery: byId("gallery"), table: byId("table"), body: byId("table-body"), card: byId("card-template"),
    dialog: byId("detail")
  };
  var state = { page: 0, matches: [], opener: null, printing: false };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function fmt(v, digits) {
    if (v === null || v === undefined) { return "–"; }
    if (isNum(v)) { return Number.isInteger(v) ? String(v) : v.toFixed(digits === undefined ? 3 : digits); }
    return String(v);
  }
  function pct(v) { return isNum(v) ? (100 * v).toFixed(0) + " %" : "n/a"; }
  function verdict(ok) { return ok === true ? "correct" : (ok === false ? "wrong" : "unknown"); }
  function mark(ok) { return ok === true ? " ✓" : (ok === false ? " ✗" : ""); }
  function models() { return ui.model.value ? [ui.model.value] : data.models; }
  function heads() { return ui.head.value ? [ui.head.value] : data.heads; }

  /* The (model, head, prediction) triples the filters select for one row. */
  function cells(row) {
    var out = [];
    models().forEach(function (m) {
      var perHead = row.m[m] || {};
      heads().forEach(function (h) { if (perHead[h]) { out.push({ model: m, head: h, cell: perHead[h] }); } });
    });
    return out;
  }

  function keep(row) {
    var text = ui.search.value.trim().toLowerCase();
    if (text && row.s.toLowerCase().indexOf(text) < 0) { return false; }
    if (ui.cls.value) {
      var cut = ui.cls.value.indexOf("|");
      var head = ui.cls.value.slice(0, cut), name = ui.cls.value.slice(cut + 1);
      if (String(row.true[head]) !== name) { return false; }
    }
    var chosen = cells(row);
    if (chosen.length === 0) { return false; }
    var status = ui.status.value, hs = heads();
    if (status === "wrong") { return chosen.some(function (c) { return c.cell.ok === false; }); }
    if (status === "correct") {
      return chosen.some(function (c) { return c.cell.ok === true; }) &&
        chosen.every(function (c) { return c.cell.ok !== false; });
    }
    if (status === "agreed") { return hs.some(function (h) { return row.ag[h] === true; }); }
    if (status === "agreed-wrong") { return hs.some(function (h) { return row.aw[h] === true; }); }
    if (status === "disagree") { return hs.some(function (h) { return row.ag[h] === false; }); }
    return true;
  }

  function confidence(row) {
    var values = cells(row).map(function (c) { return c.cell.c; }).filter(isNum);
    if (!values.length) { return null; }
    return values.reduce(function (a, b) { return a + b; }, 0) / values.length;
  }

  function apply(resetPage) {
    var matches = data.rows.filter(keep);
    var order = ui.sort.value;
    if (order === "name") {
      matches.sort(function (a, b) { return a.s < b.s ? -1 : (a.s > b.s ? 1 : 0); });
    } else {
      var sign = order === "conf-asc" ? 1 : -1;
      var keyed = matches.map(function (r) { return { r: r, c: confidence(r) }; });
      keyed.sort(function (a, b) {
        if (a.c === null) { return b.c === null ? 0 : 1; }
        if (b.c === null) { return -1; }
        return sign * (a.c - b.c);
      });
      matches = keyed.map(function (k) { return k.r; });
    }
    state.matches = matches;
    if (resetPage) { state.page = 0; }
    render();
  }

  function pageSize() {
    return ui.size.value === "all" || state.printing ? Math.max(state.matches.length, 1) : parseInt(ui.size.value, 10);
  }

  function render() {
    var total = state.matches.length, size = pageSize();
    var pages = Math.max(1, Math.ceil(total / size));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * size, end = Math.min(total, start + size);
    var shown = state.matches.slice(start, end);
    ui.out.textContent = total + " of " + data.rows.length + " samples match" +
      (total ? "; showing " + (start + 1) + "–" + end : "") + ".";
    ui.out.setAttribute("data-count", String(total));
    ui.label.textContent = "page " + (state.page + 1) + " of " + pages;
    ui.prev.disabled = state.page === 0;
    ui.next.disabled = state.page >= pages - 1;
    var table = ui.view.value === "table" || state.printing;
    ui.table.hidden = !table;
    ui.gallery.hidden = table;
    if (table) { renderTable(shown); ui.gallery.replaceChildren(); } else { renderGallery(shown); ui.body.replaceChildren(); }
  }

  function badges(row, target) {
    var chosen = cells(row);
    var wrong = chosen.filter(function (c) { return c.cell.ok === false; }).length;
    var right = chosen.filter(function (c) { return c.cell.ok === true; }).length;
    if (wrong) { target.appendChild(el("span", "badge badge-bad", "wrong " + wrong + " of " + (wrong + right))); }
    else if (right) { target.appendChild(el("span", "badge badge-ok", "correct")); }
    heads().forEach(function (h) {
      if (row.aw[h]) { target.appendChild(el("span", "badge badge-warn", "agreed but wrong · " + h)); }
      else if (data.agreement && row.ag[h] === true) { target.appendChild(el("span", "badge badge-neutral", "agree · " + h)); }
      else if (data.agreement && row.ag[h] === false) { target.appendChild(el("span", "badge badge-neutral", "disagree · " + h)); }
    });
  }

  function bandBars(model, head, shares) {
    var figure = el("figure", "bandbars");
    figure.appendChild(el("figcaption", null, (data.band_method || "band") + " shares · " +
      (data.models.length > 1 ? model + " · " : "") + head));
    var list = el("ul");
    data.bands.forEach(function (name, i) {
      var item = el("li", name === "rest" ? "rest" : null);
      var value = shares[i];
      item.appendChild(el("span", "band-name", name));
      var track = el("span", "track");
      var fill = el("span", "fill");
      fill.style.width = (isNum(value) ? Math.max(0, Math.min(1, value)) * 100 : 0) + "%";
      track.appendChild(fill);
      item.appendChild(track);
      item.appendChild(el("span", "band-value", pct(value)));
      item.setAttribute("aria-label", name + ": " + pct(value));
      list.appendChild(item);
    });
    figure.appendChild(list);
    return figure;
  }

  function renderGallery(rows) {
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) {
      var card = ui.card.content.firstElementChild.cloneNode(true);
      card.setAttribute("data-sample", row.s);
      var button = card.querySelector(".thumb-button"), img = card.querySelector("img");
      if (row.thumb) {
        img.src = row.thumb.href;
        img.width = row.thumb.width;
        img.height = row.thumb.height;
        img.alt = row.alt;
        button.setAttribute("aria-label", "Open " + row.s);
      } else {
        img.remove();
        button.classList.add("empty");
        button.setAttribute("aria-label", "Open the numbers of " + row.s + " (no figure)");
      }
      card.querySelector(".card-title").textContent = row.s;
      badges(row, card.querySelector(".badges"));
      var body = card.querySelector("tbody"), bars = card.querySelector(".bands");
      cells(row).forEach(function (c) {
        var tr = el("tr", verdict(c.cell.ok));
        tr.appendChild(el("th", null, (data.models.length > 1 ? c.model + " · " : "") + c.head)).setAttribute("scope", "row");
        tr.appendChild(el("td", null, fmt(c.cell.p) + mark(c.cell.ok)));
        tr.appendChild(el("td", null, c.cell.t === null || c.cell.t === undefined ? "unknown" : c.cell.t));
        tr.appendChild(el("td", null, fmt(c.cell.c, 2)));
        body.appendChild(tr);
        if (c.cell.b) { bars.appendChild(bandBars(c.model, c.head, c.cell.b)); }
        else if (data.band_method) {
          bars.appendChild(el("p", "small", (data.band_method + " · " + (data.models.length > 1 ? c.model + " · " : "") +
            c.head + ": no band shares (all-zero map)")));
        }
      });
      card.querySelectorAll("[data-open]").forEach(function (b) {
        b.addEventListener("click", function () { openDetail(row, b); });
      });
      fragment.appendChild(card);
    });
    ui.gallery.replaceChildren(fragment);
  }

  function renderTable(rows) {
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) {
      var tr = el("tr");
      tr.setAttribute("data-sample", row.s);
      tr.appendChild(el("th", null, row.s)).setAttribute("scope", "row");
      data.heads.forEach(function (h) { tr.appendChild(el("td", null, row.true[h] === null ? "unknown" : row.true[h])); });
      data.models.forEach(function (m) {
        data.heads.forEach(function (h) {
          var c = (row.m[m] || {})[h];
          tr.appendChild(c ? el("td", verdict(c.ok), fmt(c.p) + " (" + fmt(c.c, 2) + ")" + mark(c.ok)) : el("td", null, "—"));
        });
      });
      if (data.agreement) {
        data.heads.forEach(function (h) {
          var text = row.aw[h] ? "agree, wrong" : (row.ag[h] === true ? "agree" : (row.ag[h] === false ? "disagree" : "–"));
          tr.appendChild(el("td", row.aw[h] ? "wrong" : null, text));
        });
      }
      var td = el("td", "col-numbers"), button = el("button", "details-button", "Details");
      button.type = "button";
      button.setAttribute("aria-label", "Details of " + row.s);
      button.addEventListener("click", function () { openDetail(row, button); });
      td.appendChild(button);
      tr.appendChild(td);
      fragment.appendChild(tr);
    });
    ui.body.replaceChildren(fragment);
  }

  function detailTable(spec) {
    var columns = data.columns[spec[1]] || [];
    var table = el("table", "numbers");
    table.appendChild(el("caption", null, spec[0]));
    var head = el("tr");
    columns.forEach(function (name) { head.appendChild(el("th", null, name)).setAttribute("scope", "col"); });
    table.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    spec[2].forEach(function (values) {
      var tr = el("tr");
      values.forEach(function (v, i) {
        var cell = tr.appendChild(el(i === 0 ? "th" : "td", null, fmt(v)));
        if (i === 0) { cell.setAttribute("scope", "row"); }
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function openDetail(row, opener) {
    state.opener = opener;
    byId("detail-title").textContent = row.s;
    var badgeBox = byId("detail-badges");
    badgeBox.replaceChildren();
    badges(row, badgeBox);
    var figure = byId("detail-figure"), img = byId("detail-img"), anchor = byId("detail-figure-link");
    if (row.fig) {
      figure.hidden = false;
      img.src = row.fig;
      img.alt = row.alt;
      anchor.href = row.fig;
    } else {
      figure.hidden = true;
      img.removeAttribute("src");
      anchor.removeAttribute("href");
    }
    var meta = byId("detail-meta");
    meta.replaceChildren();
    (row.meta || []).forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") { return; }
      meta.appendChild(el("dt", null, pair[0]));
      meta.appendChild(el("dd", null, fmt(pair[1])));
    });
    var tables = byId("detail-tables");
    tables.replaceChildren();
    (row.tables || []).forEach(function (spec) { if (spec[2].length) { tables.appendChild(detailTable(spec)); } });
    var list = byId("detail-links");
    list.replaceChildren();
    var files = (row.fig ? [{ label: "full figure (PNG)", href: row.fig }] : []).concat(row.links || []);
    files.forEach(function (item) {
      var a = el("a", null, item.label);
      a.href = item.href;
      list.appendChild(el("li")).appendChild(a);
    });
    if (!files.length) { list.appendChild(el("li", null, "no per-sample files")); }
    if (typeof ui.dialog.showModal === "function") { ui.dialog.showModal(); } else { ui.dialog.setAttribute("open", ""); }
  }

  ui.dialog.addEventListener("close", function () { if (state.opener) { state.opener.focus(); } });
  ui.form.addEventListener("submit", function (event) { event.preventDefault(); });
  ui.form.addEventListener("reset", function () { window.setTimeout(function () { apply(true); }, 0); });
  [ui.model, ui.head, ui.cls, ui.status, ui.sort, ui.size, ui.view].forEach(function (control) {
    control.addEventListener("change", function () { apply(true); });
  });
  var typing = null;
  ui.search.addEventListener("input", function () {
    window.clearTimeout(typing);
    typing = window.setTimeout(function () { apply(true); }, 120);
  });
  ui.prev.addEventListener("click", function () { state.page -= 1; render(); });
  ui.next.addEventListener("click", function () { state.page += 1; render(); });
  window.addEventListener("beforeprint", function () { if (state.matches.length <= 1000) { state.printing = true; render(); } });
  window.addEventListener("afterprint", function () { if (state.printing) { state.printing = false; render(); } });
  apply(true);
  document.documentElement.setAttribute("data-ready-ms", performance.now().toFixed(1));
}());
