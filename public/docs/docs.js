// Starts Swagger UI on Stoa's generated OpenAPI document.
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
});
