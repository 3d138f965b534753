// The API reference page: Swagger UI over the server's own document. A file, not an inline script, so the
// server's Content-Security-Policy (script-src 'self') lets it run.
window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // The badge would send the document to validator.swagger.io: nothing leaves the server's own origin.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
