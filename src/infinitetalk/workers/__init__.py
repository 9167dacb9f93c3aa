"""Running work end to end: rendering a request, and (for the service) dispatching tasks."""
