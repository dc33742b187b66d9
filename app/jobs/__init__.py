"""Job execution: the worker loop, executors (local, Ray), shards, failure classes."""
