// The job page's gain-against-share chart (a job with budget.main_train_fractions):
// per candidate its gain at each share of the main labels with its interval as a band,
// drawn like the learning curves (job.js): the candidate's colour is a hash of its name.
(() => {
  document.querySelectorAll(".share-summaries .swatch").forEach((s) => {
    s.style.background = s.dataset.colour; // (set here: the CSP allows no inline style)
  });
  if (!window.Chart) return;
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const chart = data.shares;
  if (!chart || !chart.series.length) return;
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(name).trim();
  const pct = (v) => `${+(v * 100).toPrecision(4)}%`;
  const fmt = (v) => (v === null || v === undefined ? "–" : (v > 0 ? "+" : "") + v.toPrecision(3));
  const datasets = [];
  chart.series.forEach((s) => {
    const point = (values) => values.map((y, i) => ({ x: s.shares[i], y }));
    datasets.push({
      label: s.name,
      data: point(s.gain),
      borderColor: s.colour,
      backgroundColor: s.colour,
      borderWidth: 2,
      pointRadius: 4,
      verdicts: s.verdict,
      low: s.low,
      high: s.high,
      seeds: s.seeds,
      order: 1,
    });
    for (const [edge, values] of [["low", s.low], ["high", s.high]]) {
      datasets.push({
        label: `${s.name} (${edge})`,
        bandOf: s.name,
        data: point(values),
        borderWidth: 0,
        pointRadius: 0,
        pointHitRadius: 0,
        backgroundColor: s.colour + "22",
        fill: edge === "high" ? "-1" : false,
        order: 2,
      });
    }
  });
  new Chart(document.getElementById("shares-chart"), {
    type: "line",
    data: { datasets },
    options: {
      maintainAspectRatio: false,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: {
          type: "linear",
          min: 0,
          max: 1,
          title: { display: true, text: "share of the main task's training labels" },
          ticks: { callback: (v) => pct(v) },
        },
        y: {
          title: { display: true, text: `gain in test ${chart.metric} (positive is better)` },
          grid: { color: (ctx) => (ctx.tick && ctx.tick.value === 0 ? colour("--text") : colour("--grid")) },
        },
      },
      plugins: {
        legend: {
          position: "bottom",
          labels: { usePointStyle: true, filter: (item, d) => !d.datasets[item.datasetIndex].bandOf },
          onClick: (event, item, legend) => {
            const c = legend.chart;
            const shown = c.isDatasetVisible(item.datasetIndex);
            c.data.datasets.forEach((d, i) => {
              if (i === item.datasetIndex || d.bandOf === item.text) c.setDatasetVisibility(i, !shown);
            });
            c.update();
          },
        },
        tooltip: {
          filter: (item) => !item.dataset.bandOf && item.raw.y !== null,
          callbacks: {
            title: (items) => (items.length ? `${pct(items[0].raw.x)} of the main labels` : ""),
            label: (ctx) => {
              const d = ctx.dataset;
              const i = ctx.dataIndex;
              return `${d.label}: ${fmt(ctx.raw.y)} [${fmt(d.low[i])}, ${fmt(d.high[i])}] ${d.verdicts[i]}, ${d.seeds[i]} replicates`;
            },
          },
        },
      },
    },
  });
})();
