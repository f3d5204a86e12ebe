// The code import page (bots/web/pages/codes.py): the file goes up by XHR (its own progress bar), then the import's
// state is polled from GET /console/codes/imports/ID until it is done, drawing the second bar and the final report.
// Words come from the page (data-* attributes, translated by the server). No framework, no inline script.
"use strict";
(() => {
  const POLL_MS = 400;
  const $ = (id) => document.getElementById(id);

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
  }

  function size(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    if (n >= 1024) return (n / 1024).toFixed(0) + " KB";
    return n + " B";
  }

  function refuse(box, refusal, message) {
    box.dataset.state = "refused";
    const err = $("import-error");
    err.dataset.refusal = refusal || "refused";
    err.textContent = message || "";
  }

  // The frame answers some refusals (a missing CSRF token, a lapsed session) with an HTML page: read its words.
  function refusalOf(xhr) {
    try {
      return JSON.parse(xhr.responseText);
    } catch (e) {
      const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      const found = doc.querySelector("[data-refusal]");
      return found ? { refusal: found.dataset.refusal, message: found.textContent.trim() } : null;
    }
  }

  function show(box, form, s) {
    const bar = $("import-bar");
    bar.value = s.percent;
    bar.dataset.percent = String(s.percent);
    $("import-sku-shown").textContent = s.sku;
    $("import-text").textContent = fill(form ? form.dataset.read : "{percent}%", s);
    const report = $("import-report");
    report.dataset.imported = String(s.imported);
    report.dataset.duplicates = String(s.duplicates);
    report.dataset.rejected = String(s.rejected);
    if (!s.done) return;
    box.dataset.state = s.state;
    report.textContent = s.summary;
    const list = $("import-rejected");
    list.replaceChildren(...s.rejected_lines.map((line) => {
      const li = document.createElement("li");
      li.textContent = line;
      return li;
    }));
    $("import-note").textContent = s.note;
    $("import-error").dataset.refusal = s.refusal;
    $("import-error").textContent = s.error;
  }

  function poll(box, form, url) {
    box.dataset.state = "importing";
    const tick = async () => {
      let s = null;
      try {
        const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        s = await r.json();
        if (!r.ok) {
          refuse(box, s.refusal, s.message);
          return done(form);
        }
      } catch (e) {
        window.setTimeout(tick, POLL_MS * 5);  // a hiccup: try again, a little later
        return undefined;
      }
      show(box, form, s);
      if (s.done) return done(form);
      window.setTimeout(tick, POLL_MS);
      return undefined;
    };
    tick();
  }

  function done(form) {
    if (form) $("import-submit").disabled = false;
  }

  function start(box, form) {
    box.hidden = false;
    box.dataset.state = "uploading";
    $("upload-step").hidden = false;
    $("import-step").hidden = true;
    for (const id of ["import-report", "import-note", "import-error"]) $(id).textContent = "";
    $("import-rejected").replaceChildren();
    $("import-error").dataset.refusal = "";
    $("import-bar").value = 0;
    $("import-bar").dataset.percent = "0";
    const upBar = $("upload-bar");
    upBar.value = 0;
    $("import-submit").disabled = true;

    const xhr = new XMLHttpRequest();
    const url = new URL(form.action);
    url.searchParams.delete("csrf");  // the header carries it (the query is for the form without scripts)
    xhr.open("POST", url.toString());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    xhr.upload.addEventListener("progress", (ev) => {
      if (!ev.lengthComputable) return;
      upBar.max = ev.total;
      upBar.value = ev.loaded;
      $("upload-text").textContent = size(ev.loaded) + " / " + size(ev.total);
    });
    xhr.addEventListener("load", () => {
      const answer = refusalOf(xhr);
      if (xhr.status === 202 && answer && answer.status_url) {
        upBar.value = upBar.max;
        $("import-step").hidden = false;
        poll(box, form, answer.status_url);
        return;
      }
      refuse(box, answer && answer.refusal, answer ? answer.message : xhr.statusText);
      done(form);
    });
    xhr.addEventListener("error", () => {
      refuse(box, "network", form.dataset.network);
      done(form);
    });
    xhr.send(new FormData(form));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const box = $("progress");
    const form = $("import-form");
    if (!box) return;
    if (form) {
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        start(box, form);
      });
    }
    if (box.dataset.statusUrl) {  // opened on a running import (?import=ID)
      if (form) $("import-submit").disabled = true;
      poll(box, form, box.dataset.statusUrl);
    }
  });
})();
