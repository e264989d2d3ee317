// gateway-dask-zarr's page: submit jobs, follow their progress, show previews. Plain JS, no build step.
(function () {
  "use strict";

  const POLL_MS = 500; // a running job's progress
  const LIST_MS = 10000; // jobs started elsewhere (curl, notebooks)

  const form = document.getElementById("run-form");
  const button = document.getElementById("run-button");
  const formError = document.getElementById("form-error");
  const formStatus = document.getElementById("form-status");
  const list = document.getElementById("jobs");
  const empty = document.getElementById("jobs-empty");
  const template = document.getElementById("job-template");
  const kindSelect = document.getElementById("kind-select");
  const kindFields = Array.from(form.querySelectorAll("fieldset[data-kind]"));
  const inputJobs = document.getElementById("input-jobs");
  const following = new Set();
  // With AUTH=jupyterhub the browser's session cookie authenticates; a write must also carry
  // this page's CSRF token, which a page of another site cannot read.
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrfToken = csrfMeta ? csrfMeta.content : "";

  class ApiError extends Error {
    constructor(message, status, code, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  // Every API error is {"error": {"code", "message", "field"}}; anything else still reads as a sentence.
  async function api(method, url, body) {
    let response;
    try {
      const headers = { Accept: "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
      response = await fetch(url, {
        method: method,
        headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch (err) {
      throw new ApiError("The gateway could not be reached. Is it running? (" + err.message + ")", 0, "network");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (response.status === 204) return null;
    if (!response.ok) {
      const error = data && data.error;
      const message = error && error.message ? error.message : "The gateway answered " + response.status + " " + response.statusText + ".";
      throw new ApiError(message, response.status, error && error.code, error && error.field);
    }
    return data;
  }

  function humanBytes(n) {
    if (n === null || n === undefined) return "";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return i === 0 ? n.toFixed(0) + " B" : n.toFixed(1) + " " + units[i];
  }

  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  // The bar's width from its aria values; a style property set from script is allowed by the
  // page's Content-Security-Policy, a style attribute in the HTML is not.
  function drawBar(bar) {
    const total = Number(bar.getAttribute("aria-valuemax"));
    const done = Number(bar.getAttribute("aria-valuenow"));
    bar.firstElementChild.style.width = (total ? (100 * done) / total : 0).toFixed(1) + "%";
  }

  // Update a row in place from a job document.
  function fill(row, job) {
    const progress = job.progress || { done: 0, total: 0 };
    const pct = progress.total ? (100 * progress.done) / progress.total : 0;
    row.dataset.id = job.id;
    row.dataset.status = job.status;
    row.dataset.created = job.created || "";
    field(row, "self").textContent = job.id;
    field(row, "self").href = job.links.self;
    field(row, "status").textContent = job.status;
    field(row, "shape").textContent = job.shape.join(" × ");
    field(row, "chunks").textContent = job.chunks.join(" × ");
    row.dataset.kind = job.kind || "";
    row.dataset.input = job.input || "";
    field(row, "kind").textContent = job.kind || "";
    field(row, "dtype").textContent = job.dtype;
    fillParams(field(row, "params"), job);
    const bar = row.querySelector(".progress");
    bar.setAttribute("aria-valuemax", String(progress.total));
    bar.setAttribute("aria-valuenow", String(progress.done));
    drawBar(bar);
    // Accepted, but none of its tasks runs yet (issue 21's queued_s): other jobs hold the workers.
    const waiting = (job.status === "queued" || job.status === "running") && job.queued_s == null;
    field(row, "progress-text").textContent =
      progress.done + " / " + progress.total + " chunks" + (waiting ? ", waiting for workers" : "");
    field(row, "summary").textContent =
      job.status === "complete"
        ? humanBytes(job.bytes_written) + " in " + job.seconds + " s" + (job.stats ? " · mean " + job.stats.mean.toFixed(4) : "")
        : "";
    field(row, "error").textContent = job.error || "";
    field(row, "url").textContent = job.url || "";
    const img = field(row, "preview");
    const link = field(row, "preview-link");
    if (job.status === "complete") {
      const thumb = job.links.preview + "?size=thumb";
      if (img.getAttribute("src") !== thumb) {
        img.alt = "preview of " + job.id;
        img.src = thumb;
        img.hidden = false;
        link.href = job.links.preview;
      }
      field(row, "thumb-note").textContent = "";
    } else {
      field(row, "thumb-note").textContent = job.status === "running" ? Math.floor(pct) + "%" : job.status;
    }
  }

  // The kind's own parameters (those its fields list beyond the layout) that the job has, e.g. "· seed 11".
  function fillParams(span, job) {
    const fields = kindFields.find(function (f) {
      return f.dataset.kind === job.kind;
    });
    const names = fields && fields.dataset.shown ? fields.dataset.shown.split(" ") : [];
    span.textContent = "";
    for (const name of names) {
      if (job[name] === null || job[name] === undefined) continue;
      const value = document.createElement("span");
      value.dataset.param = name;
      value.textContent = Array.isArray(job[name]) ? job[name].join(",") : String(job[name]);
      const sep = document.createElement("span");
      sep.className = "sep";
      sep.textContent = "·";
      span.append(" ", sep, " " + name + " ", value);
    }
  }

  // A derived job's inputs as far back as the page shows them: "from <a>id</a> (rechunk) from <a>id</a> (random)".
  function drawChain(row) {
    const inputs = field(row, "inputs");
    inputs.hidden = !row.dataset.input;
    if (!row.dataset.input) return;
    inputs.textContent = "";
    const seen = new Set([row.dataset.id]);
    let id = row.dataset.input;
    while (id && !seen.has(id)) {
      seen.add(id);
      const source = rowFor(id);
      const link = document.createElement("a");
      link.dataset.input = id;
      link.textContent = id;
      link.href = source ? field(source, "self").getAttribute("href") : field(row, "self").getAttribute("href").replace(/[^/]*$/, id);
      inputs.append(seen.size > 2 ? " from " : "from ", link);
      if (!source) break;
      inputs.append(" (" + source.dataset.kind + ")");
      id = source.dataset.input;
    }
  }

  // The caller's complete jobs, newest first, offered to a derived kind's input field.
  function offerInputs() {
    inputJobs.textContent = "";
    for (const row of list.children) {
      if (row.dataset.status !== "complete") continue;
      const option = document.createElement("option");
      option.value = row.dataset.id;
      option.label = row.dataset.kind + ", " + field(row, "shape").textContent + ", " + field(row, "dtype").textContent;
      inputJobs.append(option);
    }
    for (const row of list.children) drawChain(row);
  }

  function chosenFields() {
    return kindFields.find(function (f) {
      return f.dataset.kind === kindSelect.value;
    });
  }

  // Show and enable the chosen kind's fields only; a derived kind's empty input starts as the newest complete job.
  function chooseKind() {
    for (const fields of kindFields) {
      const chosen = fields.dataset.kind === kindSelect.value;
      fields.hidden = !chosen;
      fields.disabled = !chosen;
    }
    const input = chosenFields().querySelector('input[list="input-jobs"]');
    if (input && input.value === "" && inputJobs.options.length > 0) input.value = inputJobs.options[0].value;
  }

  function rowFor(id) {
    for (const row of list.children) {
      if (row.dataset.id === id) return row;
    }
    return null;
  }

  // Show a job: update its row, or add one in created order (newest first).
  function show(job) {
    let row = rowFor(job.id);
    if (!row) {
      row = template.content.firstElementChild.cloneNode(true);
      const before = Array.from(list.children).find(function (r) {
        return (r.dataset.created || "") < (job.created || "");
      });
      list.insertBefore(row, before || null);
    }
    fill(row, job);
    empty.hidden = true;
    offerInputs();
    return row;
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function deleting(job) {
    const row = rowFor(job.id);
    return row !== null && row.querySelector("button.delete").disabled;
  }

  // Poll one job until it has ended (or, once deleted, until it is gone).
  async function follow(job) {
    if (following.has(job.id)) return;
    following.add(job.id);
    const url = job.links.self;
    try {
      while (job.status === "queued" || job.status === "running" || deleting(job)) {
        await sleep(POLL_MS);
        try {
          job = await api("GET", url);
          show(job);
        } catch (err) {
          const row = rowFor(job.id);
          if (err.status === 404) {
            if (row) row.remove();
            offerInputs();
            return;
          }
          if (row) field(row, "error").textContent = err.message;
          await sleep(2 * POLL_MS);
        }
      }
    } finally {
      following.delete(job.id);
    }
  }

  function showFormError(err) {
    formError.textContent = "";
    const title = document.createElement("strong");
    title.textContent = err.status ? "The job was refused (" + err.status + (err.code ? ", " + err.code : "") + ")" : "No answer";
    formError.append(title, document.createTextNode(err.message));
    formError.hidden = false;
    const at = err.field === "kind" ? kindSelect : err.field && chosenFields().querySelector('[name="' + CSS.escape(err.field) + '"]');
    if (at) {
      at.setAttribute("aria-invalid", "true");
      at.focus();
    }
  }

  function clearFormError() {
    formError.hidden = true;
    formError.textContent = "";
    for (const el of form.elements) el.removeAttribute("aria-invalid");
  }

  // The server validates; the page sends what was typed and shows what the server says.
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    clearFormError();
    const body = { kind: kindSelect.value };
    // The chosen kind's fields, from its declared parameters (kinds/).
    for (const el of chosenFields().querySelectorAll("[data-param]")) {
      const value = el.value.trim();
      if (value !== "") body[el.name] = value;
    }
    button.disabled = true;
    formStatus.textContent = "Submitting…";
    try {
      const job = await api("POST", form.action, body);
      formStatus.textContent = "Started " + job.id;
      show(job);
      follow(job);
    } catch (err) {
      formStatus.textContent = "";
      showFormError(err);
    } finally {
      button.disabled = false;
    }
  });

  // A share link (POST /jobs/<id>/share): shown under the URL and copied to the clipboard.
  async function makeShare(row, button) {
    button.disabled = true;
    try {
      const link = await api("POST", field(row, "self").getAttribute("href") + "/share");
      field(row, "share").textContent = link.url;
      field(row, "share").title = "read-only Zarr link until " + link.expires;
      field(row, "share-row").hidden = false;
      field(row, "error").textContent = "";
      if (navigator.clipboard) {
        navigator.clipboard.writeText(link.url).then(function () {
          button.textContent = "Copied";
        }, function () {});
      }
    } catch (err) {
      field(row, "error").textContent = err.message;
    }
    button.disabled = false;
  }

  // Delete a job (cancel it if it runs): the row goes once the server says the job is gone.
  async function remove(row) {
    const button = row.querySelector("button.delete");
    const url = field(row, "self").getAttribute("href");
    button.disabled = true;
    try {
      const job = await api("DELETE", url);
      if (job === null) {
        row.remove();
      } else {
        show(job);
        field(row, "error").textContent = "Deleting: the job is being cancelled and cleaned up.";
        follow(job);
      }
    } catch (err) {
      if (err.status === 404) {
        row.remove();
      } else {
        field(row, "error").textContent = err.message;
        button.disabled = false;
      }
    }
    empty.hidden = list.children.length > 0;
    offerInputs();
  }

  list.addEventListener("click", function (event) {
    const del = event.target.closest("button.delete");
    if (del) {
      const row = del.closest(".job");
      if (window.confirm("Delete job " + row.dataset.id + " and its array?")) remove(row);
      return;
    }
    const share = event.target.closest("button.share");
    if (share) {
      makeShare(share.closest(".job"), share);
      return;
    }
    const copy = event.target.closest("button.copy");
    if (!copy) return;
    const text = field(copy.closest(".job"), "url").textContent;
    const done = function () {
      copy.textContent = "Copied";
      setTimeout(function () {
        copy.textContent = "Copy";
      }, 1500);
    };
    if (navigator.clipboard) {
      navigator.clipboard.writeText(text).then(done, function () {});
    }
  });

  async function refresh() {
    try {
      const data = await api("GET", list.dataset.jobsUrl);
      for (const job of data) {
        show(job);
        if (job.status === "queued" || job.status === "running") follow(job);
      }
    } catch (err) {
      // The next refresh tries again; a job being followed reports its own errors.
    }
  }

  kindSelect.addEventListener("change", function () {
    clearFormError();
    chooseKind();
  });
  offerInputs();
  chooseKind();

  for (const row of list.children) {
    drawBar(row.querySelector(".progress"));
    const status = row.dataset.status;
    if (status === "queued" || status === "running") {
      follow({ id: row.dataset.id, status: status, links: { self: field(row, "self").getAttribute("href") } });
    }
  }
  setInterval(function () {
    if (!document.hidden) refresh();
  }, LIST_MS);

  // With AUTH=jupyterhub: end this service's session, then the hub's (its logout page).
  const logout = document.getElementById("logout-button");
  if (logout) {
    logout.addEventListener("click", async function () {
      logout.disabled = true;
      try {
        const data = await api("POST", logout.dataset.url);
        window.location.assign(data.next);
      } catch (err) {
        logout.disabled = false;
        formError.textContent = "Logging out failed: " + err.message;
        formError.hidden = false;
      }
    });
  }
})();
