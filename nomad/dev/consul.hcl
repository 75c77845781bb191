# Local Consul agent for `consul agent -dev -config-file=nomad/dev/consul.hcl`.
# `-dev` = single in-memory server with the UI on http://127.0.0.1:8500/ui.

datacenter     = "dc1"
bind_addr      = "127.0.0.1"
client_addr    = "127.0.0.1 {{ GetPrivateIP }}" # loopback + the node IP, which containers reach
log_level      = "INFO"
ui_config {
  enabled = true
}

ports {
  http = 8500
  grpc = 8502 # needed by Nomad's Consul integration
}

# ACLs: set enabled = true and default_policy = "deny" to exercise WHAGO_CONSUL_TOKEN
# (then `consul acl bootstrap`, and give Nomad and WHAGO tokens; WHAGO needs service:read).
acl {
  enabled        = false
  default_policy = "allow"
}
