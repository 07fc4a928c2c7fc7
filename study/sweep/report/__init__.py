"""What a sweep reports: the frontier, its interactive page, cost, importance and the live redraw."""
