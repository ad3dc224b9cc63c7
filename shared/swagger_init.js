// Starts Swagger UI on /docs (shared/docs.py). A file of its own, not an inline script, so
// the page's Content-Security-Policy can forbid inline script altogether.
"use strict";
const mount = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: mount.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // no badge fetched from another host
  queryConfigEnabled: false, // no ?url= or ?configUrl= pointing the page elsewhere
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  // Requests carry only the token pasted into "Authorize", never the portal's cookie.
  requestInterceptor: (request) => {
    request.credentials = "omit";
    return request;
  },
});
