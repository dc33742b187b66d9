"""HTTP shell: routes, schemas, dependencies, pagination, OpenAPI."""
