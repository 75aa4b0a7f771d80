/* alignbench leaderboard: table sorting and filtering, plot interaction. No network, no libraries.
 * The page carries all data in the DOM (rows' data-* attributes, the SVG's circles), so this script
 * only reorders and hides elements. There is one table per section (table.board: the leaderboard,
 * unverified submissions, synthetic data); each sorts on its own, the filters apply to all, and a
 * section with no row left to show is hidden. Test hook: index.html?test=sort runs a fixed sequence
 * of actions and writes what it observed, as JSON, into the element with id test-output (read by
 * the browser test). */
(function () {
  "use strict";
  var tables = Array.prototype.slice.call(document.querySelectorAll("table.board"));
  var main = document.getElementById("board");
  if (!main) { return; }
  var controls = {
    text: document.getElementById("filter-text"),
    dataset: document.getElementById("filter-dataset"),
    family: document.getElementById("filter-family"),
    kind: document.getElementById("filter-kind")
  };
  var info = document.getElementById("plot-info");

  function rowsOf(table) { return Array.prototype.slice.call(table.tBodies[0].rows); }
  function rows() { return tables.reduce(function (all, t) { return all.concat(rowsOf(t)); }, []); }

  function value(row, key, type) {
    var raw = row.getAttribute("data-" + key);
    if (type === "num") {
      var v = parseFloat(raw);
      return isNaN(v) ? null : v;
    }
    return (raw || "").toLowerCase();
  }

  /* Sort one table's rows by column `key`; empty values always go last. dir: "asc" or "desc". */
  function sortBy(table, key, type, dir) {
    var sign = dir === "desc" ? -1 : 1;
    var tbody = table.tBodies[0];
    var list = rowsOf(table).map(function (row, i) { return { row: row, v: value(row, key, type), i: i }; });
    list.sort(function (a, b) {
      if (a.v === null || a.v === "") { return (b.v === null || b.v === "") ? a.i - b.i : 1; }
      if (b.v === null || b.v === "") { return -1; }
      if (a.v < b.v) { return -sign; }
      if (a.v > b.v) { return sign; }
      return a.i - b.i;
    });
    list.forEach(function (item) { tbody.appendChild(item.row); });
    var headers = table.tHead.rows[0].cells;
    for (var h = 0; h < headers.length; h++) {
      var cell = headers[h];
      cell.setAttribute("aria-sort", cell.getAttribute("data-key") === key
        ? (dir === "desc" ? "descending" : "ascending") : "none");
    }
  }

  function applyFilters() {
    var text = controls.text ? controls.text.value.trim().toLowerCase() : "";
    var dataset = controls.dataset ? controls.dataset.value : "";
    var family = controls.family ? controls.family.value : "";
    var kind = controls.kind ? controls.kind.value : "";
    var visible = {};
    tables.forEach(function (table) {
      var shown = 0;
      rowsOf(table).forEach(function (row) {
        var show = (!dataset || row.getAttribute("data-dataset") === dataset) &&
          (!family || row.getAttribute("data-family") === family) &&
          (!kind || row.getAttribute("data-kind") === kind) &&
          (!text || (row.getAttribute("data-search") || "").indexOf(text) >= 0);
        row.hidden = !show;
        if (show) { visible[row.id] = true; shown += 1; }
      });
      var section = table.closest ? table.closest("section") : null;
      if (section && table !== main) { section.hidden = shown === 0; }
    });
    var plots = document.querySelectorAll("svg.plot");
    for (var p = 0; p < plots.length; p++) {
      var svg = plots[p];
      var container = svg.parentNode;
      container.hidden = dataset !== "" && svg.getAttribute("data-dataset") !== dataset;
      var points = svg.querySelectorAll("circle.pt");
      for (var c = 0; c < points.length; c++) {
        var on = visible[points[c].getAttribute("data-row")] === true;
        points[c].setAttribute("visibility", on ? "visible" : "hidden");
      }
    }
    var count = document.getElementById("row-count");
    if (count) { count.textContent = String(Object.keys(visible).length); }
  }

  function highlight(rowId) {
    rows().forEach(function (row) { row.classList.toggle("hl", row.id === rowId); });
    var circles = document.querySelectorAll("circle.pt");
    for (var c = 0; c < circles.length; c++) {
      circles[c].classList.toggle("hl", circles[c].getAttribute("data-row") === rowId);
    }
  }

  tables.forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    for (var h = 0; h < headers.length; h++) {
      (function (cell) {
        var key = cell.getAttribute("data-key");
        if (!key) { return; }
        cell.addEventListener("click", function () {
          var now = cell.getAttribute("aria-sort");
          var dir = now === "descending" ? "asc" : (now === "ascending" ? "desc"
            : (cell.getAttribute("data-type") === "num" && key !== "rank" ? "desc" : "asc"));
          sortBy(table, key, cell.getAttribute("data-type"), dir);
        });
      })(headers[h]);
    }
  });
  ["text", "dataset", "family", "kind"].forEach(function (name) {
    if (controls[name]) {
      controls[name].addEventListener(name === "text" ? "input" : "change", applyFilters);
    }
  });

  var allCircles = document.querySelectorAll("circle.pt");
  for (var c = 0; c < allCircles.length; c++) {
    (function (circle) {
      function show() {
        highlight(circle.getAttribute("data-row"));
        if (info) {
          info.textContent = circle.getAttribute("data-label") + ": top-1 " + circle.getAttribute("data-x") +
            "%, alignment " + circle.getAttribute("data-y") + "% (" + circle.getAttribute("data-kind") + ")";
        }
      }
      circle.addEventListener("mouseenter", show);
      circle.addEventListener("focus", show);
      circle.addEventListener("click", function () {
        show();
        var row = document.getElementById(circle.getAttribute("data-row"));
        if (row && row.scrollIntoView) { row.scrollIntoView({ block: "nearest" }); }
      });
    })(allCircles[c]);
  }
  rows().forEach(function (row) {
    row.addEventListener("mouseenter", function () { highlight(row.id); });
  });

  applyFilters();

  /* ---- test hook: ?test=sort ---- */
  var params = new URLSearchParams(window.location.search);
  if (params.get("test") === "sort") {
    var out = { steps: [], circles: [], sections: {}, plot_info: {} };
    function column(key, table) {
      return rowsOf(table || main).filter(function (r) { return !r.hidden; })
        .map(function (r) { return r.getAttribute("data-" + key); });
    }
    if (controls.dataset && params.get("dataset") !== null) {
      controls.dataset.value = params.get("dataset");
      applyFilters();
    }
    sortBy(main, "alignment", "num", "desc");
    out.steps.push({ action: "sort alignment desc", alignment: column("alignment"), model: column("model") });
    sortBy(main, "alignment", "num", "asc");
    out.steps.push({ action: "sort alignment asc", alignment: column("alignment"), model: column("model") });
    main.tHead.querySelector("th[data-key=top1] button").click();
    out.steps.push({ action: "click top1 header", top1: column("top1"), model: column("model") });
    sortBy(main, "model", "text", "asc");
    out.steps.push({ action: "sort model asc", model: column("model") });
    var filterText = params.get("filter");
    if (filterText !== null && controls.text) {
      controls.text.value = filterText;
      applyFilters();
      var shown = [];
      var points = document.querySelectorAll("circle.pt");
      for (var i = 0; i < points.length; i++) {
        if (points[i].getAttribute("visibility") !== "hidden") { shown.push(points[i].getAttribute("data-model")); }
      }
      out.steps.push({ action: "filter " + filterText, model: rows().filter(function (r) { return !r.hidden; })
        .map(function (r) { return r.getAttribute("data-model"); }), circles_visible: shown });
      controls.text.value = "";
      applyFilters();
    }
    tables.forEach(function (table) {
      var section = table.closest("section");
      out.sections[table.getAttribute("data-section")] = {
        hidden: section ? section.hidden : false,
        models: column("model", table), flags: column("flags", table), data: column("data", table),
        weights: column("weights", table), rank: column("rank", table),
        badges: rowsOf(table).filter(function (r) { return !r.hidden; }).map(function (r) {
          return Array.prototype.map.call(r.querySelectorAll(".badge"), function (b) { return b.textContent; });
        })
      };
    });
    var circles = document.querySelectorAll("svg.plot circle.pt");
    for (var k = 0; k < circles.length; k++) {
      var el = circles[k];
      var box = el.getBBox ? el.getBBox() : null;
      out.circles.push({ model: el.getAttribute("data-model"), cx: parseFloat(el.getAttribute("cx")),
        cy: parseFloat(el.getAttribute("cy")), r: parseFloat(el.getAttribute("r")),
        bbox_w: box ? box.width : null, kind: el.getAttribute("data-kind"), flags: el.getAttribute("data-flags"),
        dataset: el.closest("svg").getAttribute("data-dataset"), hidden: el.closest(".plot-wrap").hidden });
      el.dispatchEvent(new Event("mouseenter"));
      out.plot_info[el.getAttribute("data-model") + "@" + el.closest("svg").getAttribute("data-dataset")] =
        info ? info.textContent : "";
    }
    var labels = document.querySelectorAll("svg.plot text.synthetic-label");
    out.synthetic_labels = Array.prototype.map.call(labels, function (t) { return t.textContent; });
    var pre = document.getElementById("test-output") || document.createElement("pre");
    pre.id = "test-output";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
})();
