// Swagger UI for /docs, from the vendored bundle. "Try it out" calls the API with the
// dashboard's sign-in cookie and the page's CSRF token (or with a key from "Authorize").
"use strict";

(() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor: (request) => {
      if (meta && !SAFE.has((request.method || "GET").toUpperCase())) {
        request.headers["X-CSRF-Token"] = meta.content;
      }
      return request;
    },
  });
})();
