// Job page: live progress while the job runs (polls GET /api/v1/jobs/{id} every second
// and reloads once when it ends, so the server renders the ranking), cancel, the
// sortable ranking table, and the charts (Chart.js, vendored).
"use strict";

(() => {
  const root = document.getElementById("job");
  if (!root) return;
  const { api, problemOf, poll, setTime, setProgress, setStatus, FINISHED } = window.auxsel;
  const jobId = root.dataset.jobId;

  // --- live progress and cancel ------------------------------------------------------
  if (!FINISHED.has(root.dataset.status)) {
    poll(async () => {
      const response = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
      if (!response.ok) return 5000;
      const job = await response.json();
      setProgress(root, job);
      setStatus(root.querySelector("h1"), job.status);
      setTime(root.querySelector("[data-field=started] time"), job.started_at);
      const note = document.getElementById("live-note");
      if (note && job.status === "running") note.firstChild.textContent = "Training probes.";
      if (FINISHED.has(job.status)) {
        root.dataset.status = job.status;
        location.reload();
        return null;
      }
      return 1000;
    });
  }

  // --- tags and note (PATCH /api/v1/jobs/{id}) ------------------------------------------
  const metaForm = document.getElementById("meta-form");
  if (metaForm) {
    metaForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const status = document.getElementById("meta-status");
      const tags = document.getElementById("meta-tags").value
        .split(",").map((t) => t.trim()).filter(Boolean);
      const note = document.getElementById("meta-note").value.trim();
      status.textContent = "Saving…";
      const response = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`, {
        method: "PATCH",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ tags, note }),
      });
      if (!response.ok) {
        const problem = await problemOf(response);
        const errors = (problem.errors || []).map((e) => `${e.field}: ${e.message}`);
        status.textContent = errors.length ? errors.join(" ") : problem.detail || problem.title;
        return;
      }
      const job = await response.json();
      const shown = root.querySelector("#job-meta [data-field=tags]");
      shown.replaceChildren();
      if (job.tags.length) shown.append("Tags: ");
      for (const tag of job.tags) {
        const span = document.createElement("span");
        span.className = "tag";
        span.textContent = tag;
        shown.append(span, " ");
      }
      root.querySelector("#job-meta [data-field=note]").textContent = job.note;
      document.getElementById("meta-tags").value = job.tags.join(", ");
      status.textContent = "Saved.";
    });
  }

  const cancel = document.getElementById("cancel");
  if (cancel) {
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      const message = document.getElementById("cancel-message");
      const response = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}/cancel`, {
        method: "POST",
      });
      message.hidden = false;
      if (response.ok) {
        const job = await response.json();
        message.textContent =
          job.status === "canceled"
            ? "Canceled."
            : "Cancel requested; the worker stops at its next training step.";
        if (job.status === "canceled") location.reload();
      } else {
        const problem = await problemOf(response);
        message.textContent = problem.detail || problem.title;
        cancel.disabled = false;
      }
    });
  }

  // --- sortable ranking table --------------------------------------------------------
  // Each header cell is one button (the whole cell, CSS) with aria-sort on the cell; a
  // polite status line says how the table is sorted now. On phones the rows turn into
  // cards (CSS), each value under its column's name, which is copied here to the cells.
  const table = document.getElementById("ranking");
  if (table) {
    const headers = [...table.tHead.rows[0].cells];
    const labels = headers.map((th) => th.textContent.trim());
    for (const row of table.tBodies[0].rows) {
      [...row.cells].forEach((td, i) => {
        if (!td.dataset.label && labels[i]) td.dataset.label = labels[i];
      });
    }
    const status = document.createElement("p");
    status.id = "sort-status";
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    (table.closest(".table-wrap") || table).after(status);
    headers.forEach((th, index) => {
      const button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", () => {
        const current = th.getAttribute("aria-sort");
        const direction = current === "ascending" ? "descending" : "ascending";
        headers.forEach((other) => other.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", direction);
        sortBy(index, button.dataset.type, direction === "ascending" ? 1 : -1);
        status.textContent = `Sorted by ${labels[index]}, ${direction}.`;
      });
      // A click on the cell around the button (its padding, a rounded corner) sorts too.
      th.addEventListener("click", (event) => {
        if (!button.contains(event.target)) button.click();
      });
    });
    function sortBy(index, type, sign) {
      const body = table.tBodies[0];
      const rows = [...body.rows];
      const key = (row) => row.cells[index].dataset.value;
      rows.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        // Missing values sort last in either direction.
        if (x === "" || y === "") return (x === "") - (y === "");
        const order = type === "number" ? Number(x) - Number(y) : x.localeCompare(y);
        return sign * order || Number(a.cells[0].dataset.value) - Number(b.cells[0].dataset.value);
      });
      rows.forEach((row) => body.appendChild(row));
    }
  }

  // --- charts ------------------------------------------------------------------------
  if (!window.Chart) return;
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(name).trim();
  const verdictColour = {
    helpful: colour("--helpful"),
    inconclusive: colour("--inconclusive"),
    harmful: colour("--harmful"),
  };
  Chart.defaults.font.family = css.getPropertyValue("font-family");
  Chart.defaults.color = colour("--muted");
  Chart.defaults.animation = false; // charts appear at once, also in screenshots
  const fmt = (v) => (v === null || v === undefined ? "–" : (v > 0 ? "+" : "") + v.toPrecision(3));

  if (data.gains && data.gains.names.length) {
    const g = data.gains;
    const box = document.getElementById("gains-box");
    box.style.height = `${Math.max(180, 34 * g.names.length + 70)}px`;
    const colours = g.verdict.map((v) => verdictColour[v] || verdictColour.inconclusive);
    new Chart(document.getElementById("gains-chart"), {
      type: "bar",
      data: {
        labels: g.names,
        datasets: [
          {
            // Floating bars from the interval's low to its high end.
            label: "95% interval",
            data: g.low.map((low, i) => [low ?? g.gain[i], g.high[i] ?? g.gain[i]]),
            backgroundColor: colours.map((c) => c + "55"),
            borderColor: colours,
            borderWidth: 1,
            borderSkipped: false,
            barPercentage: 0.5,
            order: 2,
          },
          {
            type: "scatter",
            label: `gain (${g.metric})`,
            data: g.gain.map((gain, i) => ({ x: gain, y: g.names[i] })),
            backgroundColor: colours,
            borderColor: colour("--text"),
            pointRadius: 5,
            pointHoverRadius: 7,
            order: 1,
          },
          {
            // Each replicate's paired gain: how the mean and its interval came about.
            type: "scatter",
            label: "one replicate",
            data: g.per_seed.flatMap((values, i) => values.map((x) => ({ x, y: g.names[i] }))),
            backgroundColor: "transparent",
            borderColor: colour("--muted"),
            borderWidth: 1,
            pointRadius: 3,
            pointHoverRadius: 4,
            pointStyle: "circle",
            order: 0,
          },
        ],
      },
      options: {
        indexAxis: "y",
        maintainAspectRatio: false,
        scales: {
          x: {
            title: { display: true, text: `gain in test ${g.metric} (positive is better)` },
            grid: { color: (ctx) => (ctx.tick && ctx.tick.value === 0 ? colour("--text") : colour("--grid")) },
          },
          y: { type: "category", grid: { display: false } },
        },
        plugins: {
          legend: { position: "bottom", labels: { usePointStyle: true, boxHeight: 8 } },
          tooltip: {
            callbacks: {
              label: (ctx) => {
                if (ctx.datasetIndex === 2) return `one replicate: ${fmt(ctx.raw.x)}`;
                const i = ctx.dataIndex;
                const n = g.per_seed[i].length;
                return `gain ${fmt(g.gain[i])}  [${fmt(g.low[i])}, ${fmt(g.high[i])}]  ${g.verdict[i]}, ${n} replicate${n === 1 ? "" : "s"}`;
              },
            },
          },
        },
      },
    });
  }

  // Curves per epoch (mean over replicates with a min–max band): the main task's
  // validation metric at once; the training and auxiliary-task losses when their
  // disclosure first opens (a closed <details> has no size to draw in).
  function drawCurves(canvas, curves, yTitle) {
    // Colours come with the data: a hash of the candidate's name, so a candidate keeps
    // its colour from job to job. Each mean has a band from the lowest to the highest
    // replicate; the tooltip says how many replicates were still training.
    const length = Math.max(...curves.series.map((s) => s.mean.length));
    const text = colour("--text");
    const datasets = [];
    curves.series.forEach((s) => {
      const line = s.baseline ? text : s.colour;
      datasets.push({
        label: s.name,
        data: s.mean,
        hidden: s.hidden,
        borderColor: line,
        backgroundColor: line,
        borderWidth: s.baseline ? 2.5 : 1.5,
        borderDash: s.baseline ? [6, 4] : [],
        pointRadius: 0,
        spanGaps: false,
        counts: s.n,
        replicates: s.replicates,
        order: 1,
      });
      for (const [edge, values] of [["low", s.low], ["high", s.high]]) {
        datasets.push({
          label: `${s.name} (${edge})`,
          bandOf: s.name,
          data: values,
          hidden: s.hidden,
          borderWidth: 0,
          pointRadius: 0,
          pointHitRadius: 0,
          backgroundColor: line + "1a",
          fill: edge === "high" ? "-1" : false,
          spanGaps: false,
          order: 2,
        });
      }
    });
    new Chart(canvas, {
      type: "line",
      data: { labels: Array.from({ length }, (_, i) => i + 1), datasets },
      options: {
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { title: { display: true, text: "epoch" } },
          y: { title: { display: true, text: yTitle } },
        },
        plugins: {
          legend: {
            position: "bottom",
            labels: {
              // Lines, not boxes: the baseline's swatch is its own dashed line.
              usePointStyle: true,
              pointStyleWidth: 28,
              filter: (item, data) => !data.datasets[item.datasetIndex].bandOf,
              generateLabels: (chart) =>
                Chart.defaults.plugins.legend.labels.generateLabels(chart).map((item) => {
                  const d = chart.data.datasets[item.datasetIndex];
                  return {
                    ...item,
                    pointStyle: "line",
                    strokeStyle: d.borderColor,
                    fillStyle: d.borderColor,
                    lineWidth: d.borderWidth,
                    lineDash: d.borderDash,
                  };
                }),
            },
            onClick: (event, item, legend) => {
              const chart = legend.chart;
              const shown = chart.isDatasetVisible(item.datasetIndex);
              chart.data.datasets.forEach((d, i) => {
                if (i === item.datasetIndex || d.bandOf === item.text) chart.setDatasetVisibility(i, !shown);
              });
              chart.update();
            },
          },
          tooltip: {
            filter: (item) => !item.dataset.bandOf && item.raw !== null,
            callbacks: {
              label: (ctx) => {
                const d = ctx.dataset;
                const n = d.counts[ctx.dataIndex];
                return `${d.label}: ${ctx.raw.toPrecision(4)} (mean of ${n} of ${d.replicates} replicates still training)`;
              },
            },
          },
        },
      },
    });
  }

  const hasCurve = (curves) => curves && curves.series.some((s) => s.mean.length);
  if (hasCurve(data.curves)) {
    drawCurves(
      document.getElementById("curves-chart"), data.curves, `validation ${data.curves.metric}`
    );
  }
  const more = document.getElementById("more-curves");
  if (more) {
    let drawn = false;
    more.addEventListener("toggle", () => {
      if (!more.open || drawn) return;
      drawn = true;
      for (const [id, curves, title] of [
        ["train-curves-chart", data.train_curves, "main task training loss"],
        ["aux-curves-chart", data.aux_curves, "auxiliary task training loss"],
      ]) {
        const canvas = document.getElementById(id);
        if (canvas && hasCurve(curves)) drawCurves(canvas, curves, title);
      }
    });
  }

  const proxies = data.proxies || {};
  const select = document.getElementById("proxy-select");
  if (select && Object.keys(proxies).length) {
    const chart = new Chart(document.getElementById("proxy-chart"), {
      type: "scatter",
      data: { datasets: [{ label: "candidates", data: [] }] },
      options: {
        maintainAspectRatio: false,
        scales: {
          x: { title: { display: true, text: "" }, grace: "5%" },
          y: { title: { display: true, text: "probe gain" }, grace: "5%" },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (ctx) => `${ctx.raw.name}: proxy ${fmt(ctx.raw.x)}, gain ${fmt(ctx.raw.y)}` } },
        },
      },
    });
    const show = () => {
      const points = proxies[select.value] || [];
      const dataset = chart.data.datasets[0];
      dataset.data = points;
      dataset.backgroundColor = points.map((p) => verdictColour[p.verdict] || verdictColour.inconclusive);
      dataset.pointRadius = 6;
      chart.options.scales.x.title.text = `${select.value} (proxy score)`;
      chart.update();
    };
    select.addEventListener("change", show);
    show();
  }
})();
