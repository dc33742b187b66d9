"""The auxsel command line: admin commands and the HTTP client."""
