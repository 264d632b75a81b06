// pullcache console: the little script the pages need. No library, no
// build step; every text from the server goes in through textContent.
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function human(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }

  function setProgress(bar, done, total) {
    if (!bar) return;
    if (total > 0) { bar.max = total; bar.value = Math.min(done, total); } else { bar.removeAttribute("value"); }
  }

  // Splits a streamed NDJSON text into complete lines, keeping the rest.
  function lineReader(onLine) {
    let seen = 0;
    return function (text, final) {
      let end;
      while ((end = text.indexOf("\n", seen)) >= 0) {
        const line = text.slice(seen, end).trim();
        seen = end + 1;
        if (line) onLine(JSON.parse(line));
      }
      if (final && text.slice(seen).trim()) onLine(JSON.parse(text.slice(seen)));
    };
  }

  // postStream POSTs body to url asking for a progress stream and calls
  // onLine with each line; it returns null, or the refusal's message when
  // the server answered with an error instead.
  async function postStream(url, body, onLine) {
    const headers = { Accept: "application/x-ndjson", "X-CSRF-Token": csrf };
    if (body !== null) headers["Content-Type"] = "application/json";
    const resp = await fetch(url, {
      method: "POST", credentials: "same-origin", headers: headers,
      body: body === null ? null : JSON.stringify(body),
    });
    if (!resp.ok) {
      let msg = "the server answered " + resp.status;
      try { msg = (await resp.json()).errors[0].message; } catch (err) { /* not JSON */ }
      return msg;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    const read = lineReader(onLine);
    let text = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
      read(text, false);
    }
    read(text, true);
    return null;
  }

  // Overview: the live part is drawn by the server; fetch it again.
  function live() {
    const box = document.getElementById("live");
    if (!box) return;
    const url = box.dataset.refresh;
    async function refresh() {
      try {
        const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (resp.redirected || resp.status === 401) { window.location.reload(); return; }
        if (resp.ok) box.innerHTML = await resp.text(); // server-rendered and escaped by html/template
      } catch (e) { /* the server restarting: try again next time */ }
      setTimeout(refresh, 2000);
    }
    setTimeout(refresh, 2000);
  }

  function copyButtons() {
    for (const btn of document.querySelectorAll("button.copy")) {
      btn.addEventListener("click", async function () {
        const pre = btn.parentElement.querySelector("pre");
        const text = pre.textContent.replace(/\s+#.*$/, "");
        try {
          await navigator.clipboard.writeText(text);
        } catch (e) {
          // Plain HTTP has no clipboard API: select the text to copy by hand.
          const range = document.createRange();
          range.selectNodeContents(pre);
          const sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
        }
        btn.textContent = "Copied";
        setTimeout(function () { btn.textContent = "Copy"; }, 1500);
      });
    }
  }

  function upload() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const drop = document.getElementById("drop");
    const input = document.getElementById("file");
    const status = document.getElementById("upload-status");
    const message = document.getElementById("upload-message");
    const nameBox = document.getElementById("name-needed");
    const imported = document.getElementById("imported");
    const limit = Number(form.dataset.limit || 0);
    const phases = ["upload", "verify", "store"];
    let current = null;
    // active is the phase under way: the one a failure stops.
    let active = "upload";

    function say(text, isError) {
      message.textContent = text;
      message.className = isError ? "notice error" : "notice";
    }

    function send(file, tag) {
      current = file;
      status.hidden = false;
      nameBox.hidden = true;
      imported.replaceChildren();
      document.getElementById("upload-file").textContent = file.name + " (" + human(file.size) + ")";
      active = "upload";
      for (const p of phases) {
        const bar = document.getElementById(p + "-progress");
        bar.classList.remove("failed");
        setProgress(bar, 0, 1);
        document.getElementById(p + "-bytes").textContent = "";
      }
      if (limit > 0 && file.size > limit) {
        say("Refused: " + file.name + " is " + human(file.size) + ", more than the upload limit of " + human(limit) + ".", true);
        return;
      }
      say("Uploading…");
      const params = new URLSearchParams();
      const registry = document.getElementById("registry").value.trim();
      if (registry) params.set("registry", registry);
      if (tag) params.set("tag", tag);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/ui/api/import?" + params.toString());
      xhr.setRequestHeader("Accept", "application/x-ndjson");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.onprogress = function (e) {
        setProgress(document.getElementById("upload-progress"), e.loaded, e.total);
        document.getElementById("upload-bytes").textContent = human(e.loaded) + " of " + human(e.total);
      };
      xhr.upload.onload = function () {
        setProgress(document.getElementById("upload-progress"), 1, 1);
        active = "verify";
        say("Uploaded; the server is checking the archive…");
      };
      const read = lineReader(onEvent);
      xhr.onprogress = function () { if (xhr.status === 200) read(xhr.responseText, false); };
      xhr.onload = function () {
        if (xhr.status === 200) { read(xhr.responseText, true); return; }
        let err = { code: "UNKNOWN", message: "the server answered " + xhr.status };
        try { err = JSON.parse(xhr.responseText).errors[0]; } catch (e) { /* not JSON */ }
        refused(err);
      };
      xhr.onerror = function () { failed(); say("The upload broke off (the connection was lost). Try again.", true); };
      xhr.send(file);
    }

    function onEvent(ev) {
      if (ev.phase === "verify" || ev.phase === "store") {
        active = ev.phase;
        setProgress(document.getElementById("upload-progress"), 1, 1);
        setProgress(document.getElementById(ev.phase + "-progress"), ev.done, ev.total);
        document.getElementById(ev.phase + "-bytes").textContent = human(ev.done || 0) + " of " + human(ev.total || 0);
        if (ev.phase === "store") setProgress(document.getElementById("verify-progress"), 1, 1);
        say(ev.phase === "verify" ? "Verifying every layer…" : "Storing…");
      } else if (ev.phase === "done") {
        for (const id of ["upload-progress", "verify-progress", "store-progress"]) setProgress(document.getElementById(id), 1, 1);
        say("Imported " + ev.imported.length + (ev.imported.length === 1 ? " image" : " images") + ", ready to pull.");
        for (const im of ev.imported) {
          const li = document.createElement("li");
          const a = document.createElement("a");
          a.href = "/ui/image?ref=" + encodeURIComponent(im.name);
          a.textContent = im.name;
          a.className = "imported-name";
          const code = document.createElement("code");
          code.textContent = " " + im.digest;
          li.append(a, code);
          imported.append(li);
        }
      } else if (ev.phase === "failed") {
        refused(ev.error);
      }
    }

    // failed marks the phase under way as failed, where it stopped, and
    // empties the phases after it: no bar is left looking as if it were
    // still going.
    function failed() {
      const bar = document.getElementById(active + "-progress");
      bar.classList.add("failed");
      const bytes = document.getElementById(active + "-bytes");
      bytes.textContent = (bytes.textContent ? bytes.textContent + " — " : "") + "failed";
      for (const p of phases.slice(phases.indexOf(active) + 1)) {
        setProgress(document.getElementById(p + "-progress"), 0, 1);
        document.getElementById(p + "-bytes").textContent = "";
      }
    }

    function refused(err) {
      failed();
      say("Refused: " + err.message, true);
      if (err.detail && err.detail.reason === "NO_NAME") {
        nameBox.hidden = false;
        document.getElementById("retry-tag").focus();
      }
    }

    document.getElementById("retry").addEventListener("click", function () {
      const tag = document.getElementById("retry-tag").value.trim();
      if (!tag) { document.getElementById("retry-tag").focus(); return; }
      if (current) send(current, tag);
    });
    input.addEventListener("change", function () {
      if (input.files.length) send(input.files[0], document.getElementById("tag").value.trim());
    });
    drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer.files.length) send(e.dataTransfer.files[0], document.getElementById("tag").value.trim());
    });
  }

  function warm() {
    const form = document.getElementById("warm-form");
    if (!form) return;
    const tbody = document.querySelector("#warm-table tbody");
    const summary = document.getElementById("warm-summary");
    const rows = new Map();

    function row(image) {
      let r = rows.get(image);
      if (r) return r;
      const tr = document.createElement("tr");
      tr.dataset.image = image;
      const name = document.createElement("td");
      name.textContent = image;
      const prog = document.createElement("td");
      const bar = document.createElement("progress");
      const bytes = document.createElement("span");
      prog.append(bar, " ", bytes);
      const state = document.createElement("td");
      state.className = "state";
      state.textContent = "waiting";
      tr.append(name, prog, state);
      tbody.append(tr);
      r = { bar: bar, bytes: bytes, state: state, tr: tr };
      rows.set(image, r);
      return r;
    }

    function onEvent(ev) {
      if (ev.results) {
        const failed = ev.results.filter(function (r) { return r.error; });
        summary.textContent = "Warmed " + (ev.results.length - failed.length) + " of " + ev.results.length + " images.";
        summary.className = failed.length ? "notice error" : "notice";
        document.getElementById("warm-start").disabled = false;
        return;
      }
      const r = row(ev.image);
      setProgress(r.bar, ev.done || 0, ev.total || 0);
      r.bytes.textContent = human(ev.done || 0) + (ev.total ? " of " + human(ev.total) : "");
      if (ev.finished) {
        r.state.textContent = ev.error ? "failed: " + ev.error : "done";
        r.tr.className = ev.error ? "error" : "done";
        if (!ev.error) setProgress(r.bar, 1, 1);
      } else if (ev.done) {
        r.state.textContent = "pulling";
      }
    }

    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      const images = document.getElementById("images").value.split("\n")
        .map(function (s) { return s.replace(/#.*/, "").trim(); }).filter(Boolean);
      if (!images.length) return;
      const body = { images: images };
      const platform = document.getElementById("platform").value.trim();
      if (platform) body.platform = platform;
      rows.clear();
      tbody.replaceChildren();
      summary.textContent = "";
      document.getElementById("warm-status").hidden = false;
      document.getElementById("warm-start").disabled = true;
      for (const im of images) row(im);
      try {
        const refusal = await postStream("/ui/api/warm", body, onEvent);
        if (refusal !== null) {
          summary.textContent = "Refused: " + refusal;
          summary.className = "notice error";
          document.getElementById("warm-start").disabled = false;
        }
      } catch (err) {
        summary.textContent = "Lost the connection; the warm goes on in the server (see the overview's fills).";
        summary.className = "notice error";
        document.getElementById("warm-start").disabled = false;
      }
    });
  }

  // What a verify report's counts mean, in the order shown; problem
  // rows make the store unsound until repaired.
  const verifyRows = [
    ["files", "Files hashed", false], ["corrupt", "Corrupt (do not hash to their name)", true],
    ["stray", "Stray files under blobs/", true], ["missing_files", "Records of missing files", true],
    ["unrecorded", "Files the index does not count", true], ["dangling_manifests", "Manifests whose bytes are gone", true],
    ["dangling_tags", "Tags pointing at nothing", true], ["temp_files", "Leftover temp files", true],
    ["orphans", "Orphans (swept after the grace period)", false], ["incomplete", "Images with blobs not cached", false],
    ["dangling_links", "Repository links to nothing", false],
  ];

  function verify() {
    const form = document.getElementById("verify-form");
    if (!form) return;
    const bar = document.getElementById("verify-bar");
    const bytes = document.getElementById("verify-bytes");
    const message = document.getElementById("verify-message");
    const table = document.getElementById("verify-report");
    const start = document.getElementById("verify-start");

    function say(text, isError) {
      message.textContent = text;
      message.className = isError ? "notice error" : "notice";
    }

    function stopped(text) {
      bar.classList.add("failed");
      bytes.textContent += " — failed";
      say(text, true);
    }

    function show(rep, clean) {
      setProgress(bar, 1, 1);
      const body = table.querySelector("tbody");
      body.replaceChildren();
      for (const [key, label, problem] of verifyRows) {
        const v = rep[key];
        const n = Array.isArray(v) ? v.length : (v || 0);
        const tr = document.createElement("tr");
        tr.dataset.key = key;
        if (problem && n > 0) tr.className = "error";
        const th = document.createElement("td");
        th.textContent = label;
        const td = document.createElement("td");
        td.textContent = String(n);
        tr.append(th, td);
        body.append(tr);
      }
      table.hidden = false;
      let text = clean ? "Sound: every blob matches its digest and every record its file." :
        "Problems found" + (rep.repaired ? "; repaired: run it again to check." : ": run it again with Repair.");
      if (rep.quarantined && rep.quarantined.length) text += " Quarantined: " + rep.quarantined.join(", ") + ".";
      say(text, !clean && !rep.repaired);
    }

    function onEvent(ev) {
      if (ev.error) { stopped("Verify failed: " + ev.error.message); return; }
      if (ev.report) { show(ev.report, ev.clean === true); return; }
      setProgress(bar, ev.done || 0, ev.total || 0);
      bytes.textContent = human(ev.done || 0) + (ev.total ? " of about " + human(ev.total) : "");
    }

    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      const repair = document.getElementById("verify-repair").checked;
      if (repair && !window.confirm("Repair moves corrupt files to quarantine/ and removes the records that point at nothing. Go on?")) return;
      document.getElementById("verify-status").hidden = false;
      table.hidden = true;
      bar.classList.remove("failed");
      setProgress(bar, 0, 1);
      bytes.textContent = "";
      say("Verifying…");
      start.disabled = true;
      try {
        const refusal = await postStream("/ui/api/verify" + (repair ? "?repair=1" : ""), null, onEvent);
        if (refusal !== null) stopped("Refused: " + refusal);
      } catch (err) {
        stopped("Lost the connection; the verify may still be running in the server (see its log).");
      }
      start.disabled = false;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    copyButtons();
    upload();
    warm();
    verify();
  });
})();
