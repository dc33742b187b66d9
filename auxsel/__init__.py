"""auxsel from Python (a notebook, a script): a client of a running auxsel server.

    from auxsel import Client

    client = Client()  # AUXSEL_URL / AUXSEL_API_KEY, or Client(url=..., api_key=...)
    job = client.submit(frame, "churned", ["upgraded", "tickets"], recipe="quick")
    client.wait(job)
    client.ranking(job)  # a DataFrame, best first

To run the engine in-process instead (no server), use ``engine.advise``."""

from auxsel.client import ApiError, Client, JobFailedError

__all__ = ["ApiError", "Client", "JobFailedError"]
