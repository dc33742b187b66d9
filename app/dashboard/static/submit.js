// Submit page: upload a table or pick one, read its column profile from the API, let
// the user give each column a role, and POST the job. The API is the only validator:
// its problem+json `errors[].field` paths are shown next to the matching inputs.
"use strict";

(() => {
  const form = document.getElementById("submit-form");
  if (!form) return;
  const { api, problemOf } = window.auxsel;
  const $ = (id) => document.getElementById(id);
  const datasetSelect = $("dataset");
  const fileInput = $("file");
  const tasks = $("tasks");
  const mainColumn = $("main-column");
  const tbody = $("columns-table").tBodies[0];
  const KINDS = ["binary", "multiclass", "regression"];
  // Each recipe's knobs (engine.RECIPES): an empty knob input takes the chosen recipe's
  // value, which its placeholder shows; only what the user typed is sent.
  // (getAttribute: the form's own `dataset` is shadowed by its #dataset select)
  const RECIPES = JSON.parse(form.getAttribute("data-recipes") || "{}");
  let profile = []; // columns of the chosen data set
  let roles = {}; // their data set roles (column name → {role, reason, set_by})
  let datasetId = null;
  const DATASET_ROLES = ["feature", "label", "id", "ignore"];
  let sent = { candidates: [], features: [] }; // which rows the last request's indexes name
  // A clone (/submit?from=job): that job's spec, applied to the form once its data set's
  // columns are read; its budget knobs the form does not show are sent as they were.
  const cloneScript = $("clone-spec");
  const clone = cloneScript ? JSON.parse(cloneScript.textContent) : null;
  let pendingClone = clone;
  const FORM_KNOBS = ["seeds", "epochs", "hidden", "lam", "batch_size", "lr", "patience",
    "main_train_fraction", "main_train_fractions", "subset_search"];
  const cloneTasks = new Map(
    clone ? clone.candidates.filter((t) => !t.dataset_id || t.dataset_id === clone.dataset_id)
      .map((t) => [t.column, t]) : []);

  // --- errors next to fields -----------------------------------------------------------
  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((p) => {
      p.hidden = true;
      p.textContent = "";
    });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
    $("form-errors").hidden = true;
  }

  function rowOf(column) {
    return tbody.querySelector(`tr[data-column="${CSS.escape(column)}"]`);
  }

  // Where an API field path is shown: [error element, input to mark and focus].
  function target(field) {
    let m = field.match(/^candidates\[(\d+)\]\.(\w+)/);
    if (m && sent.candidates[+m[1]] !== undefined) {
      const row = rowOf(sent.candidates[+m[1]]);
      if (row) {
        const part = m[2] === "kind" ? "kind" : "role";
        return [row.querySelector(`.error-${part}`), row.querySelector(`select.${part}`)];
      }
    }
    m = field.match(/^features\[(\d+)\]/);
    if (m && sent.features[+m[1]] !== undefined) {
      const row = rowOf(sent.features[+m[1]]);
      if (row) return [row.querySelector(".error-role"), row.querySelector("select.role")];
    }
    // The field itself, else its nearest parent path (budget.hidden[1] → budget.hidden).
    let path = field;
    while (path) {
      const error = document.getElementById(`error-${path}`);
      if (error) {
        const box = error.closest(".field");
        return [error, box ? box.querySelector("input, select") : null];
      }
      const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      path = cut > 0 ? path.slice(0, cut) : "";
    }
    return [null, null];
  }

  function showErrors(problem) {
    const list = $("form-errors").querySelector("ul");
    list.replaceChildren();
    const errors = problem.errors && problem.errors.length
      ? problem.errors
      : [{ field: "", message: problem.detail || problem.title || "The request failed." }];
    let first = null;
    for (const { field, message } of errors) {
      const [error, input] = target(field || "");
      if (error) {
        error.textContent = error.textContent ? `${error.textContent} ${message}` : message;
        error.hidden = false;
        const box = error.closest(".field, td");
        if (box) box.classList.add("invalid");
      }
      if (input) {
        input.setAttribute("aria-invalid", "true");
        first = first || input;
      }
      const item = document.createElement("li");
      item.textContent = field ? `${field}: ${message}` : message;
      list.appendChild(item);
    }
    $("form-errors").hidden = false;
    (first || $("form-errors")).focus();
  }

  // --- data set: upload or pick --------------------------------------------------------
  async function upload(file) {
    clearErrors();
    const status = $("upload-status");
    status.textContent = `Uploading ${file.name}…`;
    const body = new FormData();
    body.append("file", file);
    body.append("name", file.name.replace(/\.(csv|parquet|pq)$/i, ""));
    const response = await api("/api/v1/datasets", { method: "POST", body });
    if (!response.ok) {
      status.textContent = "";
      showErrors(await problemOf(response));
      return;
    }
    const dataset = await response.json();
    // 200: these bytes were uploaded before, and the answer is that data set.
    const reused = response.status === 200;
    status.textContent =
      `${reused ? "Already uploaded" : "Uploaded"}: ${dataset.rows} rows, ${dataset.columns} columns.`;
    const listed = Array.from(datasetSelect.options).some((o) => o.value === dataset.id);
    if (!listed) {
      const option = new Option(
        `${dataset.name} (${dataset.rows} rows × ${dataset.columns} columns)`, dataset.id);
      datasetSelect.add(option, 1);
    }
    datasetSelect.value = dataset.id;
    useDataset(dataset);
  }

  async function pick(id) {
    clearErrors();
    if (!id) {
      tasks.disabled = true;
      return;
    }
    const response = await api(`/api/v1/datasets/${encodeURIComponent(id)}`);
    if (!response.ok) {
      showErrors(await problemOf(response));
      return;
    }
    useDataset(await response.json());
  }

  function option(value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }

  // A column's role in the job, by default: its data set role (feature → feature;
  // label, id and ignore → ignored: a label never becomes an input by default).
  const jobRoleOf = (column) => ((roles[column] || {}).role === "feature" ? "feature" : "ignored");

  function useDataset(dataset) {
    profile = dataset.profile;
    roles = dataset.roles || {};
    datasetId = dataset.id;
    $("save-roles").disabled = true;
    $("roles-status").textContent = "";
    $("dataset-summary").textContent =
      `${dataset.name}: ${dataset.rows} rows, ${dataset.columns} columns (${dataset.format}).`;
    mainColumn.replaceChildren(option("", "Choose the main task…"));
    for (const col of profile) {
      if (col.kind) mainColumn.appendChild(option(col.name, `${col.name} (${col.kind})`));
    }
    tbody.replaceChildren(...profile.map(columnRow));
    tasks.disabled = false;
    syncMain();
    if (pendingClone && dataset.id === pendingClone.dataset_id) {
      applyCloneTasks(pendingClone);
      pendingClone = null;
    }
  }

  // The clone's tasks: its main task, its candidates (with their kinds) and, when it
  // named them, its features; every other column ignored.
  function applyCloneTasks(job) {
    mainColumn.value = job.main_task.column;
    syncMain();
    if (job.main_task.kind) $("main-kind").value = job.main_task.kind;
    const features = job.features ? new Set(job.features) : null;
    for (const row of tbody.rows) {
      const column = row.dataset.column;
      if (row.dataset.role === "main") continue;
      const role = row.querySelector("select.role");
      const task = cloneTasks.get(column);
      let value = role.value;
      if (task) value = "candidate";
      else if (features) value = features.has(column) ? "feature" : "ignored";
      else if (value === "candidate") value = jobRoleOf(column);
      row.dataset.touched = "1";
      role.value = value;
      role.dispatchEvent(new Event("change"));
      if (task && task.kind) row.querySelector("select.kind").value = task.kind;
    }
    counts();
  }

  // The clone's settings that need no data set: name, method, metric, recipe, seed, knobs.
  function applyCloneSettings(job) {
    $("name").value = job.name || "";
    $("tags").value = (job.tags || []).join(", ");
    $("method").value = job.method;
    $("metric").value = job.metric;
    $("recipe").value = job.recipe;
    $("seed").value = job.seed;
    const budget = job.budget || {};
    for (const knob of FORM_KNOBS) {
      const input = $(knob);
      const value = budget[knob];
      if (value === undefined) continue; // the default, which the form shows already
      if (input.type === "checkbox") input.checked = Boolean(value);
      else if (value === null) input.value = "";
      else input.value = Array.isArray(value) ? value.join(", ") : String(value);
    }
  }

  function columnRow(col) {
    const row = document.createElement("tr");
    row.dataset.column = col.name;
    const id = `col-${profile.indexOf(col)}`;
    const cell = (text, cls) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      td.textContent = text;
      return td;
    };
    const name = cell("", "");
    const strong = document.createElement("strong");
    strong.textContent = col.name;
    strong.id = `${id}-name`;
    name.appendChild(strong);
    const examples = (col.examples || []).slice(0, 3)
      .map((v) => (typeof v === "number" ? String(+v.toPrecision(4)) : String(v))).join(", ");
    if (examples) {
      const sub = document.createElement("div");
      sub.className = "sub";
      sub.textContent = `e.g. ${examples}`;
      name.appendChild(sub);
    }

    const datasetRoleCell = cell("", "");
    const datasetRole = document.createElement("select");
    datasetRole.className = "dataset-role";
    datasetRole.id = `${id}-dataset-role`;
    datasetRole.setAttribute("aria-label", `Data set role of ${col.name}`);
    datasetRole.append(...DATASET_ROLES.map((r) => option(r, r)));
    const current = roles[col.name] || { role: "feature", reason: "" };
    datasetRole.value = current.role;
    const reason = document.createElement("div");
    reason.className = "sub role-reason";
    reason.id = `${id}-role-reason`;
    reason.textContent = current.reason;
    datasetRole.setAttribute("aria-describedby", reason.id);
    datasetRole.addEventListener("change", () => {
      const changed = datasetRole.value !== (roles[col.name] || {}).role;
      row.classList.toggle("role-changed", changed);
      reason.textContent = changed ? "Not saved yet." : (roles[col.name] || {}).reason || "";
      $("save-roles").disabled = !tbody.querySelector("tr.role-changed");
      // The job follows the data set role unless the user chose its job role.
      if (!row.dataset.touched && row.dataset.role !== "main") {
        role.value = datasetRole.value === "feature" ? "feature" : "ignored";
        row.dataset.role = role.value;
        kind.disabled = true;
        counts();
      }
    });
    datasetRoleCell.append(datasetRole, reason);

    const roleCell = cell("", "");
    const role = document.createElement("select");
    role.className = "role";
    role.id = `${id}-role`;
    role.setAttribute("aria-label", `Role of ${col.name}`);
    const mainOption = option("main", "main task");
    mainOption.hidden = true;
    role.append(option("feature", "feature"), option("candidate", "candidate"),
      option("ignored", "ignored"), mainOption);
    role.addEventListener("change", (event) => {
      if (event.isTrusted) row.dataset.touched = "1";
      row.dataset.role = role.value;
      kind.disabled = role.value !== "candidate";
      counts();
    });
    const roleError = document.createElement("p");
    roleError.className = "field-error error-role";
    roleError.id = `${id}-role-error`;
    roleError.hidden = true;
    role.setAttribute("aria-describedby", roleError.id);
    roleCell.append(role, roleError);

    const kindCell = cell("", "");
    const kind = document.createElement("select");
    kind.className = "kind";
    kind.id = `${id}-kind`;
    kind.setAttribute("aria-label", `Kind of ${col.name}`);
    kind.append(option("", col.kind ? `inferred (${col.kind})` : "inferred"),
      ...KINDS.map((k) => option(k, k)));
    kind.disabled = true;
    const kindError = document.createElement("p");
    kindError.className = "field-error error-kind";
    kindError.id = `${id}-kind-error`;
    kindError.hidden = true;
    kind.setAttribute("aria-describedby", kindError.id);
    kindCell.append(kind, kindError);

    row.dataset.role = jobRoleOf(col.name);
    role.value = row.dataset.role;
    const cells = [name, cell(col.dtype, ""), cell(String(col.unique), "num"),
      cell(String(col.missing), "num"), datasetRoleCell, roleCell, kindCell];
    // Labels for the phone layout, where each row becomes a small card.
    ["", "type", "distinct", "missing", "data set role", "in this job", "kind"].forEach((label, i) => {
      if (label) cells[i].dataset.label = label;
    });
    row.append(...cells);
    return row;
  }

  function syncMain() {
    for (const row of tbody.rows) {
      const role = row.querySelector("select.role");
      const isMain = row.dataset.column === mainColumn.value;
      row.classList.toggle("main", isMain);
      role.disabled = isMain;
      if (isMain) {
        role.value = "main";
        row.dataset.role = "main";
        row.querySelector("select.kind").disabled = true;
      } else if (row.dataset.role === "main") {
        role.value = jobRoleOf(row.dataset.column);
        row.dataset.role = role.value;
      }
    }
    counts();
  }

  function counts() {
    const rows = [...tbody.rows];
    const n = (r) => rows.filter((row) => row.dataset.role === r).length;
    $("role-counts").textContent =
      `${n("candidate")} candidate(s), ${n("feature")} feature(s), ${n("ignored")} ignored`;
  }

  function markShown(role) {
    for (const row of tbody.rows) {
      if (row.hidden || row.dataset.role === "main") continue;
      const select = row.querySelector("select.role");
      row.dataset.touched = "1";
      select.value = role;
      select.dispatchEvent(new Event("change"));
    }
  }

  datasetSelect.addEventListener("change", () => pick(datasetSelect.value));
  fileInput.addEventListener("change", () => {
    if (fileInput.files.length) upload(fileInput.files[0]);
  });
  mainColumn.addEventListener("change", syncMain);
  $("column-filter").addEventListener("input", (event) => {
    const needle = event.target.value.toLowerCase();
    for (const row of tbody.rows) row.hidden = !row.dataset.column.toLowerCase().includes(needle);
  });
  function showRecipe() {
    const knobs = RECIPES[$("recipe").value] || {};
    form.querySelectorAll("input[data-knob]").forEach((input) => {
      const value = knobs[input.dataset.knob];
      input.placeholder = Array.isArray(value) ? value.join(", ") : String(value ?? "");
    });
  }
  $("recipe").addEventListener("change", showRecipe);
  $("mark-candidates").addEventListener("click", () => markShown("candidate"));
  $("mark-features").addEventListener("click", () => markShown("feature"));
  $("save-roles").addEventListener("click", saveRoles);

  // --- the job spec --------------------------------------------------------------------
  // Numbers go as typed: a value the API refuses comes back as a field error.
  const num = (id) => {
    const raw = $(id).value.trim();
    return raw === "" ? undefined : Number(raw);
  };

  // Save the data set roles changed in the table (PATCH .../columns): later jobs'
  // default inputs are the feature-role columns; jobs already submitted keep theirs.
  async function saveRoles() {
    clearErrors();
    const changed = {};
    for (const row of tbody.querySelectorAll("tr.role-changed")) {
      changed[row.dataset.column] = row.querySelector("select.dataset-role").value;
    }
    if (!Object.keys(changed).length) return;
    $("roles-status").textContent = "Saving…";
    const response = await api(`/api/v1/datasets/${encodeURIComponent(datasetId)}/columns`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ roles: changed }),
    });
    if (!response.ok) {
      $("roles-status").textContent = "";
      showErrors(await problemOf(response));
      return;
    }
    roles = (await response.json()).roles;
    for (const row of tbody.rows) {
      row.classList.remove("role-changed");
      const reason = row.querySelector(".role-reason");
      if (reason) reason.textContent = (roles[row.dataset.column] || {}).reason || "";
    }
    $("save-roles").disabled = true;
    $("roles-status").textContent = `Saved the roles of ${Object.keys(changed).length} column(s).`;
  }

  function spec() {
    const rows = [...tbody.rows];
    const candidates = rows.filter((r) => r.dataset.role === "candidate");
    const features = rows.filter((r) => r.dataset.role === "feature");
    // The API's default inputs are the saved feature-role columns that are not tasks:
    // name the features only when this job's differ from them.
    const byDefault = rows.filter((r) => (roles[r.dataset.column] || {}).role === "feature"
      && r.dataset.role !== "main" && r.dataset.role !== "candidate");
    const same = byDefault.length === features.length
      && byDefault.every((r) => r.dataset.role === "feature");
    sent = {
      candidates: candidates.map((r) => r.dataset.column),
      features: same ? [] : features.map((r) => r.dataset.column),
    };
    const hidden = $("hidden").value.split(/[\s,]+/).filter(Boolean).map(Number);
    const shares = $("main_train_fractions").value.split(/[\s,]+/).filter(Boolean).map(Number);
    const body = {
      dataset_id: datasetSelect.value,
      main_task: { column: mainColumn.value },
      candidates: candidates.map((r) => {
        const kind = r.querySelector("select.kind").value;
        const task = cloneTasks.get(r.dataset.column);
        const named = task && task.name && task.name !== task.column ? { name: task.name } : {};
        return kind
          ? { ...named, column: r.dataset.column, kind }
          : { ...named, column: r.dataset.column };
      }),
      method: $("method").value,
      metric: $("metric").value,
      seed: num("seed"),
      recipe: $("recipe").value,
      // (an empty knob is left out: JSON.stringify drops undefined)
      budget: {
        seeds: num("seeds"),
        epochs: num("epochs"),
        hidden: hidden.length ? hidden : undefined,
        lam: num("lam"),
        batch_size: num("batch_size"),
        lr: num("lr"),
        patience: num("patience"),
        main_train_fraction: num("main_train_fraction"),
        main_train_fractions: shares.length ? shares : undefined,
        sharing: $("sharing").value || undefined,
        coupling: num("coupling"),
        subset_search: $("subset_search").checked,
      },
    };
    if (clone && clone.dataset_id === body.dataset_id) {
      // The clone's knobs the form does not show go as they were (those it shows, as
      // the form says now); its main task keeps its name.
      const kept = Object.fromEntries(Object.entries(clone.budget || {})
        .filter(([k, v]) => !FORM_KNOBS.includes(k) && v !== null));
      body.budget = { ...kept, ...body.budget };
      const main = clone.main_task;
      if (main.column === body.main_task.column && main.name && main.name !== main.column) {
        body.main_task.name = main.name;
      }
    }
    if ($("main-kind").value) body.main_task.kind = $("main-kind").value;
    if ($("name").value.trim()) body.name = $("name").value.trim();
    const tags = $("tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.length) body.tags = tags;
    if ($("note").value.trim()) body.note = $("note").value.trim();
    if (!same) body.features = sent.features;
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const button = $("submit-button");
    const status = $("submit-status");
    if (!datasetSelect.value) {
      showErrors({ errors: [{ field: "dataset_id", message: "Choose or upload a data set." }] });
      return;
    }
    button.disabled = true;
    status.textContent = "Submitting…";
    try {
      const response = await api("/api/v1/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(spec()),
      });
      if (response.status === 202) {
        const job = await response.json();
        status.textContent = "Submitted; opening the job…";
        location.assign(`/jobs/${encodeURIComponent(job.id)}`);
        return;
      }
      status.textContent = "";
      showErrors(await problemOf(response));
    } catch (err) {
      status.textContent = `Could not reach the server: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });

  if (clone) applyCloneSettings(clone);
  showRecipe();
  if (datasetSelect.value) pick(datasetSelect.value);
})();
