// The live page: ask for the newest clicks and conversions every 1.5 s and redraw both tables.
// Every value goes in as text (textContent), never as HTML: user agents and names are typed by
// strangers.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status) { return; }
  var source = status.getAttribute("data-source");
  var columns = {
    clicks: ["clicked_at", "link_id", "campaign", "offer", "phone", "verdict", "reasons", "ip",
      "user_agent"],
    conversions: ["converted_at", "link_id", "campaign", "offer", "phone", "event", "revenue",
      "attribution", "ip"]
  };
  function text(value) { return value === null || value === undefined ? "" : String(value); }
  function redraw(kind, rows) {
    var table = document.getElementById(kind);
    if (!table) { return; }
    var body = document.createElement("tbody");
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-id", text(row.id));
      columns[kind].forEach(function (column) {
        var td = document.createElement("td");
        if (column === "phone" && row.href_phone) {
          var a = document.createElement("a");
          a.href = row.href_phone;
          a.textContent = text(row.phone);
          td.appendChild(a);
        } else {
          td.textContent = text(row[column]);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.replaceChild(body, table.tBodies[0]);
    var empty = table.closest("section").querySelector(".empty");
    if (empty) { empty.hidden = rows.length > 0; }
  }
  function poll() {
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.json();
      })
      .then(function (data) {
        redraw("clicks", data.clicks);
        redraw("conversions", data.conversions);
        status.textContent = "Updated " + new Date().toLocaleTimeString() + " (every 1.5 s).";
      })
      .catch(function (error) { status.textContent = "Not updated: " + error.message; })
      .then(function () { window.setTimeout(poll, 1500); });
  }
  poll();
}());
