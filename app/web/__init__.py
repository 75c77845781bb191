"""The web console: a single-page app (standard JavaScript modules and CSS, no build step) served by
WHAGO itself at ``/``."""
