"""HTTP views: pick the dialect, parse the request, run it on the router, render the answer."""
