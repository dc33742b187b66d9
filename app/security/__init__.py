"""Who may do what, and how much: API keys, web sessions, rate limits, request guards."""
