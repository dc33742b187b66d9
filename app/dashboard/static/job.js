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
  const table = document.getElementById("ranking");
  if (table) {
    const headers = [...table.tHead.rows[0].cells];
    headers.forEach((th, index) => {
      const button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", () => {
        const current = th.getAttribute("aria-sort");
        const direction = current === "ascending" ? "descending" : "ascending";
        headers.forEach((other) => other.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", direction);
        sortBy(index, button.dataset.type, direction === "ascending" ? 1 : -1);
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
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const i = ctx.dataIndex;
                return `gain ${fmt(g.gain[i])}  [${fmt(g.low[i])}, ${fmt(g.high[i])}]  ${g.verdict[i]}`;
              },
            },
          },
        },
      },
    });
  }

  const curves = data.curves;
  if (curves && curves.series.some((s) => s.mean.length)) {
    const palette = ["#0969da", "#8250df", "#bf3989", "#1a7f37", "#bc4c00", "#0a7ea4",
      "#953800", "#6e7781", "#d4a72c", "#116329"];
    const length = Math.max(...curves.series.map((s) => s.mean.length));
    new Chart(document.getElementById("curves-chart"), {
      type: "line",
      data: {
        labels: Array.from({ length }, (_, i) => i + 1),
        datasets: curves.series.map((s, i) => ({
          label: s.name,
          data: s.mean,
          hidden: s.hidden,
          borderColor: s.baseline ? colour("--text") : palette[(i - 1) % palette.length],
          backgroundColor: s.baseline ? colour("--text") : palette[(i - 1) % palette.length],
          borderWidth: s.baseline ? 3 : 1.5,
          borderDash: s.baseline ? [6, 4] : [],
          pointRadius: 0,
          spanGaps: false,
        })),
      },
      options: {
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { title: { display: true, text: "epoch" } },
          y: { title: { display: true, text: `validation ${curves.metric}` } },
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 14 } } },
      },
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
