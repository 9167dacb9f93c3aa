"""What a process runs: the API server's and a worker's wiring, the task runner, dispatch (in-process and
Dramatiq), the reaper, the event watcher, the webhook sender, the worker supervisor and the torchrun launch."""
