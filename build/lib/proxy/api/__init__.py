"""HTTP views: parse the request, call the backend, shape the response."""
