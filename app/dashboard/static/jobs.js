// Jobs page: follows the newest jobs by polling GET /api/v1/jobs (every 1.5 s while a
// job is queued or running, every 4 s otherwise, so new jobs show up), updating rows in
// place.
"use strict";

(() => {
  const root = document.getElementById("jobs");
  if (!root || root.dataset.live !== "true") return;
  const { api, poll, setTime, setProgress, setStatus, FINISHED } = window.auxsel;
  const tbody = root.querySelector("tbody");
  const template = document.getElementById("job-row-template");
  const datasetNames = new Map();

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
  }

  function fill(row, job) {
    row.dataset.jobId = job.id;
    row.dataset.status = job.status;
    setStatus(row, job.status);
    setProgress(row, job);
    row.querySelector("[data-field=progress]").setAttribute("aria-label", `Progress of ${job.name}`);
    setTime(row.querySelector("[data-field=finished] time"), job.finished_at);
    const csv = row.querySelector("[data-field=ranking-csv]");
    csv.href = `${job.links.ranking}?format=csv`;
    csv.hidden = job.status !== "succeeded";
  }

  function create(job) {
    const row = template.content.firstElementChild.cloneNode(true);
    const link = row.querySelector("[data-field=link]");
    link.href = `/jobs/${encodeURIComponent(job.id)}`;
    link.textContent = job.name;
    row.querySelector("[data-field=id]").textContent = job.id;
    row.querySelector("[data-field=api]").href = job.links.self;
    setTime(row.querySelector("[data-field=created] time"), job.created_at);
    const cell = row.querySelector("[data-field=dataset]");
    cell.textContent = job.dataset_id || "–";
    datasetName(cell, job.dataset_id).catch(() => {});
    fill(row, job);
    return row;
  }

  async function refresh() {
    const params = new URLSearchParams({ page_size: root.dataset.pageSize });
    if (root.dataset.status) params.set("status", root.dataset.status);
    const response = await api(`/api/v1/jobs?${params}`);
    if (!response.ok) return 5000;
    const { items } = await response.json();
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
    root.querySelector("[data-empty]").hidden = tbody.rows.length > 0;
    root.querySelector("table").hidden = tbody.rows.length === 0;
    const active = items.some((job) => !FINISHED.has(job.status));
    return active ? 1500 : 4000;
  }

  poll(refresh);
})();
