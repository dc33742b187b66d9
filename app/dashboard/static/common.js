// Shared helpers of the dashboard pages: API calls (the session travels in the HttpOnly
// cookie, never in page script; changes carry the page's CSRF token), local times, and
// polling that pauses in hidden tabs.
"use strict";

window.auxsel = (() => {
  const FINISHED = new Set(["succeeded", "failed", "canceled"]);

  function signIn() {
    const here = location.pathname + location.search;
    location.assign("/signin?next=" + encodeURIComponent(here));
  }

  // The session's CSRF token, sent back with every change made with the cookie.
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrfToken = csrfMeta ? csrfMeta.content : null;
  const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (csrfToken && !SAFE.has((options.method || "GET").toUpperCase())) {
      headers["X-CSRF-Token"] = csrfToken;
    }
    const response = await fetch(path, { credentials: "same-origin", ...options, headers });
    if (response.status === 401) {
      signIn();
      throw new Error("sign-in needed");
    }
    return response;
  }

  async function problemOf(response) {
    try {
      return await response.json();
    } catch (err) {
      return { title: `HTTP ${response.status}`, detail: response.statusText, errors: [] };
    }
  }

  const dateFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    second: "2-digit",
  });

  function setTime(el, iso) {
    if (!iso) {
      el.removeAttribute("datetime");
      el.textContent = "–";
      el.removeAttribute("title");
      return;
    }
    const date = new Date(iso);
    el.setAttribute("datetime", iso);
    el.textContent = dateFormat.format(date);
    el.title = date.toISOString();
  }

  function localTimes(root = document) {
    root.querySelectorAll("time[datetime]").forEach((el) => setTime(el, el.getAttribute("datetime")));
  }

  // Calls step() now and again after the delay it returns (ms), or stops on null.
  // While the tab is hidden nothing is polled; it catches up when it is shown again.
  function poll(step) {
    let timer = null;
    let running = false;
    async function tick() {
      timer = null;
      if (document.hidden) return;
      running = true;
      let delay;
      try {
        delay = await step();
      } catch (err) {
        delay = 5000; // server restarting or network blip: retry, slower
      }
      running = false;
      if (delay !== null && delay !== undefined) timer = setTimeout(tick, delay);
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !running) {
        if (timer) clearTimeout(timer);
        tick();
      }
    });
    tick();
  }

  function setProgress(root, job) {
    const bar = root.querySelector("[data-field=progress]");
    const text = root.querySelector("[data-field=progress-text]");
    const { done, total, fraction } = job.progress;
    if (bar) bar.value = fraction;
    if (text) text.textContent = total ? `${done} / ${total}` : "–";
  }

  function setStatus(root, status) {
    const badge = root.querySelector("[data-field=status]");
    if (badge) {
      badge.textContent = status;
      badge.className = `badge badge-${status}`;
    }
  }

  document.addEventListener("DOMContentLoaded", () => localTimes());
  return { api, problemOf, poll, setTime, localTimes, setProgress, setStatus, FINISHED };
})();
