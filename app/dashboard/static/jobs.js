// Jobs page: a list that sorts by any column (each header cell is one button, with
// aria-sort on the cell), searches all jobs by a text box (name, tag, main task, data
// set; through the API), and selects two jobs to compare. The first page follows the newest jobs by polling
// GET /api/v1/jobs (every 1.5 s while a job is queued or running, every 4 s otherwise,
// so new jobs show up), updating rows in place and keeping the sort and the filter.
"use strict";

(() => {
  const root = document.getElementById("jobs");
  if (!root) return;
  const { api, poll, setTime, setProgress, setStatus, FINISHED } = window.auxsel;
  const table = document.getElementById("jobs-table");
  const tbody = table.tBodies[0];
  const template = document.getElementById("job-row-template");
  const headers = [...table.tHead.rows[0].cells];
  const labels = headers.map((th) => th.textContent.trim());
  const filterBox = document.getElementById("job-filter");
  const filterCount = document.getElementById("filter-count");
  const compareButton = document.getElementById("compare-button");
  const compareHint = document.getElementById("compare-hint");
  const form = document.getElementById("jobs-form");
  const datasetNames = new Map();
  let sort = null; // {index, type, sign}; null: the server's order, newest first

  // --- durations (app/dashboard/views.py's duration, the same words) ---------------
  function duration(seconds) {
    if (seconds === null) return "–";
    const s = Math.floor(seconds);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function setDuration(row) {
    const cell = row.querySelector("[data-field=duration]");
    const { started, finished } = row.dataset;
    const seconds = started
      ? Math.max(((finished ? Date.parse(finished) : Date.now()) - Date.parse(started)) / 1000, 0)
      : null;
    cell.dataset.value = seconds === null ? "" : String(seconds);
    cell.textContent = duration(seconds);
  }

  // --- sorting -------------------------------------------------------------------------
  const status = document.createElement("p");
  status.id = "sort-status";
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  table.after(status);

  function sortRows() {
    if (!sort) return;
    const { index, type, sign } = sort;
    const rows = [...tbody.rows];
    const key = (row) => row.cells[index].dataset.value || "";
    const created = (row) => row.cells[9].dataset.value || "";
    rows.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      // Missing values sort last in either direction; ties newest first.
      if (x === "" || y === "") {
        if ((x === "") !== (y === "")) return (x === "") - (y === "");
      } else {
        const order = type === "number" ? Number(x) - Number(y) : x.localeCompare(y);
        if (order) return sign * order;
      }
      return created(b).localeCompare(created(a));
    });
    rows.forEach((row) => tbody.appendChild(row));
  }

  headers.forEach((th, index) => {
    const button = th.querySelector("button");
    if (!button) return;
    button.addEventListener("click", () => {
      const direction = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
      headers.forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", direction);
      sort = { index, type: button.dataset.type, sign: direction === "ascending" ? 1 : -1 };
      sortRows();
      status.textContent = `Sorted by ${labels[index]}, ${direction}.`;
    });
    // A click on the cell around the button (its padding) sorts too.
    th.addEventListener("click", (event) => {
      if (!button.contains(event.target)) button.click();
    });
  });

  // --- searching ----------------------------------------------------------------------
  // The search box searches all the owner's jobs (GET /api/v1/jobs?q=: name, tag, main
  // task or data set), not only the rows shown. On the first page the rows follow what
  // is typed (after a pause); on older pages, and without JavaScript, Enter submits the
  // search form and the server renders the first page of matches.
  let query = filterBox.value.trim();
  let generation = 0; // a search started since a request was sent makes its answer stale
  let searchTimer = null;

  function searchParams(extra = {}) {
    const params = new URLSearchParams();
    if (root.dataset.status) params.set("status", root.dataset.status);
    if (query) params.set("q", query);
    if (root.dataset.tag) params.set("tag", root.dataset.tag);
    for (const [key, value] of Object.entries(extra)) params.set(key, value);
    return params;
  }

  function showSearch(count, more) {
    const searching = Boolean(query || root.dataset.tag);
    filterCount.textContent = searching
      ? `${count}${more ? "+" : ""} ${count === 1 && !more ? "job" : "jobs"} found`
      : "";
    root.querySelector("[data-no-match]").hidden = !(searching && count === 0);
    root.querySelector("[data-empty]").hidden = searching || count > 0;
    table.hidden = count === 0;
  }
  // --- selecting two jobs to compare ---------------------------------------------------
  function selected() {
    return [...tbody.querySelectorAll("input[data-field=select]:checked")];
  }

  function updateCompare() {
    const boxes = selected();
    const ready = boxes.length === 2;
    compareButton.disabled = !ready;
    compareHint.textContent = ready
      ? "Ready: compare the two selected jobs."
      : boxes.length > 2
        ? `${boxes.length} jobs selected: select exactly two.`
        : "Select two jobs to compare their rankings.";
  }
  tbody.addEventListener("change", (event) => {
    if (event.target.matches("input[data-field=select]")) updateCompare();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const boxes = selected();
    if (boxes.length !== 2) return;
    // a is the older job, b the newer: the changes read in the order they were made.
    const created = (box) => box.closest("tr").querySelector("[data-field=created]").dataset.value;
    boxes.sort((x, y) => created(x).localeCompare(created(y)));
    const params = new URLSearchParams({ a: boxes[0].value, b: boxes[1].value });
    location.assign(`/compare?${params}`);
  });
  updateCompare();
  for (const row of tbody.rows) setDuration(row);

  // --- following the newest jobs live ------------------------------------------------
  if (root.dataset.live !== "true") return;

  function rowFor(id) {
    return tbody.querySelector(`tr[data-job-id="${CSS.escape(id)}"]`);
  }

  async function datasetName(cell, id) {
    if (!id) return;
    if (!datasetNames.has(id)) {
      datasetNames.set(id, id);
      const response = await api(`/api/v1/datasets/${encodeURIComponent(id)}`);
      if (response.ok) datasetNames.set(id, (await response.json()).name);
    }
    cell.textContent = datasetNames.get(id);
    cell.dataset.value = cell.textContent.toLowerCase();
  }

  function fmtGain(gain) {
    if (gain === null || gain === undefined) return "–";
    if (gain !== 0 && Math.abs(gain) < 1e-3) return (gain > 0 ? "+" : "") + gain.toExponential(2);
    return (gain >= 0 ? "+" : "") + gain.toFixed(4);
  }

  function setTop(cell, top) {
    if (!top) {
      cell.textContent = "–";
      cell.dataset.value = "";
      return;
    }
    const name = document.createElement("span");
    name.dataset.field = "top-name";
    name.textContent = top.name;
    const verdict = document.createElement("span");
    verdict.className = `badge verdict-${top.verdict}`;
    verdict.textContent = top.verdict;
    const gain = document.createElement("span");
    gain.className = "sub";
    gain.dataset.field = "top-gain";
    gain.textContent = fmtGain(top.gain);
    cell.replaceChildren(name, " ", verdict, " ", gain);
    cell.dataset.value = top.gain === null ? "" : String(top.gain);
  }

  function setTags(cell, tags) {
    cell.replaceChildren();
    for (const tag of tags) {
      const span = document.createElement("span");
      span.className = "tag";
      span.textContent = tag;
      cell.append(span, " ");
    }
    cell.dataset.value = tags.join(" ").toLowerCase();
  }

  function fill(row, job) {
    row.dataset.jobId = job.id;
    row.dataset.status = job.status;
    row.dataset.started = job.started_at || "";
    row.dataset.finished = job.finished_at || "";
    setStatus(row, job.status);
    row.querySelector("[data-field=status-cell]").dataset.value = job.status;
    setProgress(row, job);
    row.querySelector("[data-field=progress]").setAttribute("aria-label", `Progress of ${job.name}`);
    setDuration(row);
    setTop(row.querySelector("[data-field=top]"), job.top_candidate);
    setTags(row.querySelector("[data-field=tags]"), job.tags || []);
    const csv = row.querySelector("[data-field=ranking-csv]");
    csv.href = `${job.links.ranking}?format=csv`;
    csv.hidden = job.status !== "succeeded";
  }

  function create(job) {
    const row = template.content.firstElementChild.cloneNode(true);
    const link = row.querySelector("[data-field=link]");
    link.href = `/jobs/${encodeURIComponent(job.id)}`;
    link.textContent = job.name;
    link.closest("td").dataset.value = job.name.toLowerCase();
    row.querySelector("[data-field=id]").textContent = job.id;
    const box = row.querySelector("[data-field=select]");
    box.value = job.id;
    box.setAttribute("aria-label", `Select ${job.name} to compare`);
    const main = job.spec.main_task;
    const mainLabel = main.name || main.column;
    const mainCell = row.querySelector("[data-field=main-task]");
    mainCell.textContent = mainLabel;
    mainCell.dataset.value = mainLabel.toLowerCase();
    const method = row.querySelector("[data-field=method]");
    method.textContent = job.spec.method;
    method.dataset.value = job.spec.method;
    row.querySelector("[data-field=api]").href = job.links.self;
    setTime(row.querySelector("[data-field=created] time"), job.created_at);
    row.querySelector("[data-field=created]").dataset.value = job.created_at;
    const cell = row.querySelector("[data-field=dataset]");
    cell.textContent = job.dataset_id || "–";
    datasetName(cell, job.dataset_id).catch(() => {});
    fill(row, job);
    return row;
  }

  async function refresh() {
    const sent = generation;
    const response = await api(`/api/v1/jobs?${searchParams({ page_size: root.dataset.pageSize })}`);
    if (sent !== generation) return 1500; // the search changed while this was in flight
    if (!response.ok) return 5000;
    const { items, next_page_token: next } = await response.json();
    if (sent !== generation) return 1500;
    // The rows are the first page of what the API answers: a job no longer in it (the
    // search changed, or newer jobs pushed it to the next page) leaves.
    const ids = new Set(items.map((job) => job.id));
    for (const row of [...tbody.rows]) if (!ids.has(row.dataset.jobId)) row.remove();
    let anchor = null; // new jobs go above the rows already shown, newest first
    for (const job of items) {
      let row = rowFor(job.id);
      if (row) {
        fill(row, job);
      } else {
        row = create(job);
        if (anchor) anchor.after(row);
        else tbody.prepend(row);
      }
      anchor = row;
    }
    sortRows();
    updateCompare();
    showSearch(items.length, Boolean(next));
    const pager = document.querySelector("[data-pager]");
    pager.hidden = !next;
    if (next) pager.querySelector("a").href = `/?${searchParams({ page_token: next })}`;
    document.querySelector("[data-tools]").hidden =
      items.length === 0 && !query && !root.dataset.tag;
    const active = items.some((job) => !FINISHED.has(job.status));
    return active ? 1500 : 4000;
  }

  filterBox.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      const typed = filterBox.value.trim();
      if (typed === query) return;
      query = typed;
      generation += 1;
      const params = searchParams().toString();
      history.replaceState(null, "", params ? `/?${params}` : "/");
      refresh().catch(() => {});
    }, 300);
  });

  poll(refresh);
})();
