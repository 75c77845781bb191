# Local Nomad agent for trying the per-tenant WAHA jobs by hand, next to consul/dev/consul.hcl:
#   consul agent -dev -config-file=nomad/dev/consul.hcl
#   sudo nomad agent -dev -config=nomad/dev/nomad.hcl     # root: docker driver + host volumes
# `-dev` already runs a server and a client in one process, in-memory, with ACLs off.

datacenter = "dc1"
region     = "global"
bind_addr  = "127.0.0.1"
log_level  = "INFO"

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

consul {
  address = "127.0.0.1:8500"
  # token = "<consul token>" when Consul ACLs are on
  auto_advertise   = true
  server_auto_join = true
  client_auto_join = true
}

client {
  enabled = true
  # Dynamic ports (the WAHA "http" port) come from this range.
  min_dynamic_port = 20000
  max_dynamic_port = 32000

  # Target of WHAGO_WAHA_SESSIONS_HOST_VOLUME=whago-sessions (optional).
  host_volume "whago-sessions" {
    path      = "/tmp/whago-sessions"
    read_only = false
  }
}

plugin "docker" {
  config {
    allow_privileged = false
    volumes {
      enabled = false
    }
  }
}

# ACLs: enable to exercise WHAGO_NOMAD_TOKEN (then `nomad acl bootstrap`).
acl {
  enabled = false
}
