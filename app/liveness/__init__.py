"""Session liveness: catch connected chips whose WhatsApp connection is dead, and heal them."""
