"""SAQ workers: the jobs, their limits, and how a worker process (or ``whago dev``) runs them."""
