"""auxsel's service shell: HTTP API, job worker, dashboard and CLI around ``engine``."""
