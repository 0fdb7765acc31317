// The desk's only script: short polling of page fragments, SLA countdowns, and the reply box's
// knowledge-base search. No framework, nothing loaded from elsewhere.
(function () {
  "use strict";
  var csrfMeta = document.querySelector('meta[name="csrf"]');
  var csrf = csrfMeta ? csrfMeta.content : "";

  // Fragments with data-poll are fetched again every few seconds and replaced when they change.
  document.querySelectorAll("[data-poll]").forEach(function (node) {
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      // X-Version: the server answers 204 when the fragment has not changed since this version.
      var headers = { Accept: "text/html" };
      if (node.dataset.version) headers["X-Version"] = node.dataset.version;
      fetch(node.dataset.poll, { credentials: "same-origin", headers: headers })
        .then(function (r) {
          if (r.status !== 200) return null;
          if (r.headers.get("X-Version")) node.dataset.version = r.headers.get("X-Version");
          return r.text();
        })
        .then(function (html) {
          if (html !== null && html.trim() !== node.innerHTML.trim()) { node.innerHTML = html; tick(); }
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }, 2000);
  });

  function minutes(seconds) {
    var m = Math.floor(Math.abs(seconds) / 60);
    return m >= 60 ? Math.floor(m / 60) + " h " + (m % 60) + " min" : m + " min";
  }

  // Waiting times count up, SLA countdowns count down and turn red when overdue.
  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-since]").forEach(function (n) {
      n.textContent = minutes(now - Number(n.dataset.since));
    });
    document.querySelectorAll("[data-due]").forEach(function (n) {
      var left = Number(n.dataset.due) - now;
      if (left <= 0) { n.classList.add("overdue"); n.textContent = n.dataset.overdue + " " + minutes(left); }
      else if (n.tagName !== "DD") { n.textContent = minutes(left) + (left < 60 ? " " + Math.floor(left) + " s" : ""); }
    });
  }
  tick();
  setInterval(tick, 1000);

  // Reply with an entry: search the knowledge base, insert an entry's three steps, edit, send.
  var form = document.getElementById("entry-search");
  if (form) {
    var results = document.getElementById("entry-results");
    var box = document.getElementById("reply-text");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = new URLSearchParams({ q: form.elements.q.value, language: form.dataset.language, csrf: csrf });
      fetch("/desk/api/entries", { method: "POST", credentials: "same-origin", body: body })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          results.textContent = "";
          if (!data.entries || !data.entries.length) {
            var none = document.createElement("li"); none.textContent = form.dataset.none; results.appendChild(none); return;
          }
          data.entries.forEach(function (entry) {
            var li = document.createElement("li");
            li.className = "entry";
            var title = document.createElement("span");
            title.textContent = entry.score.toFixed(2) + " " + entry.question;
            var button = document.createElement("button");
            button.type = "button";
            button.className = "insert";
            button.dataset.entry = entry.entry_id;
            button.textContent = form.dataset.insert;
            button.addEventListener("click", function () {
              box.value = box.value.trim() ? box.value.trim() + "\n\n" + entry.text : entry.text;
              box.focus();
            });
            var preview = document.createElement("pre");
            preview.textContent = entry.text;
            li.appendChild(title); li.appendChild(button); li.appendChild(preview);
            results.appendChild(li);
          });
        });
    });
  }
})();
