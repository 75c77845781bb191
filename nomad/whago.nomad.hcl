# WHAGO itself on Nomad: the API (>= 2 instances behind Consul) and the SAQ workers.
#
#   nomad var put nomad/jobs/whago secret_key=... webhook_hmac_key=... waha_api_key=... \
#       encryption_key=... nomad_token=... consul_token=... database_url=... redis_url=... \
#       waha_sessions_database_url=... [waha_sessions_admin_url=...]
#   nomad job run -var image=registry.example.com/whago:1.0.0 nomad/whago.nomad.hcl
#
# Non-secret settings are in each task's env block (same values in all three tasks).
# Secrets come from Nomad Variables (path nomad/jobs/whago, readable by this job by default) and
# are rendered into an env file, so they never sit in the job spec or the Nomad UI.
# `whago migrate` runs as a prestart task of each API allocation; it takes a PostgreSQL advisory
# lock, so concurrent runs take turns and the later ones find nothing to apply.
# Consul: the containers reach it on the node's IP, so the Consul agent must listen there too
# (client_addr = "127.0.0.1 {{ GetPrivateIP }}"; it binds loopback only by default), or set
# -var consul_addr=... to wherever it listens.

variable "image" {
  type = string
}
variable "waha_image" {
  type    = string
  default = "devlikeapro/waha:gows-2026.7.1" # tenant WAHA image; must be pinned to a version
}
variable "consul_addr" {
  type    = string
  default = "" # empty: the node's IP, port 8500
}
variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}
variable "public_url" {
  type = string # e.g. https://whago.example.com
}
variable "api_count" {
  type    = number
  default = 2
}
variable "worker_count" {
  type    = number
  default = 2
}

locals {
  secrets_template = <<-EOT
    {{ with nomadVar "nomad/jobs/whago" }}
    WHAGO_SECRET_KEY={{ .secret_key }}
    WHAGO_WEBHOOK_HMAC_KEY={{ .webhook_hmac_key }}
    WHAGO_WAHA_API_KEY={{ .waha_api_key }}
    WHAGO_ENCRYPTION_KEY={{ .encryption_key }}
    WHAGO_NOMAD_TOKEN={{ .nomad_token }}
    WHAGO_CONSUL_TOKEN={{ .consul_token }}
    WHAGO_DATABASE_URL={{ .database_url }}
    WHAGO_REDIS_URL={{ .redis_url }}
    WHAGO_WAHA_SESSIONS_DATABASE_URL={{ .waha_sessions_database_url }}
    {{ with .waha_sessions_admin_url }}WHAGO_WAHA_SESSIONS_ADMIN_URL={{ . }}{{ end }}
    {{ end }}
  EOT
}

job "whago" {
  type        = "service"
  datacenters = var.datacenters
  meta {
    created_by = "whago"
    component  = "control-plane"
  }

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "api" {
    count = var.api_count

    # Two API instances never share a node, so one node loss keeps the API up.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      port "http" {
        to = 8000
      }
    }

    service {
      name     = "whago-api"
      provider = "consul"
      port     = "http"
      tags     = ["whago", "api"]

      check {
        name     = "whago-api-live"
        type     = "http"
        path     = "/health/live"
        interval = "10s"
        timeout  = "2s"
        check_restart {
          limit = 3
          grace = "30s"
        }
      }
      check {
        name     = "whago-api-ready"
        type     = "http"
        path     = "/health/ready"
        interval = "10s"
        timeout  = "3s"
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "fail"
    }

    task "migrate" {
      driver = "docker"
      lifecycle {
        hook    = "prestart"
        sidecar = false
      }
      config {
        image   = var.image
        command = "whago"
        args    = ["migrate"]
      }
      env {
        WHAGO_ENV               = "production"
        WHAGO_PUBLIC_URL        = var.public_url
        WHAGO_SCHEDULER         = "nomad"
        WHAGO_NOMAD_ADDR        = "http://${attr.unique.network.ip-address}:4646"
        WHAGO_CONSUL_ADDR       = var.consul_addr != "" ? var.consul_addr : "http://${attr.unique.network.ip-address}:8500"
        WHAGO_NOMAD_NAMESPACE   = "default"
        WHAGO_NOMAD_DATACENTERS = join(",", var.datacenters)
        WHAGO_WAHA_IMAGE        = var.waha_image
        WHAGO_WAHA_ENGINE       = "GOWS"
      }
      template {
        data        = local.secrets_template
        destination = "secrets/whago.env"
        env         = true
      }
      resources {
        cpu    = 100
        memory = 128
      }
    }

    task "api" {
      driver = "docker"
      config {
        image   = var.image
        command = "whago"
        args    = ["serve", "--host", "0.0.0.0", "--port", "8000"]
        ports   = ["http"]
      }
      env {
        WHAGO_ENV               = "production"
        WHAGO_PUBLIC_URL        = var.public_url
        WHAGO_SCHEDULER         = "nomad"
        WHAGO_NOMAD_ADDR        = "http://${attr.unique.network.ip-address}:4646"
        WHAGO_CONSUL_ADDR       = var.consul_addr != "" ? var.consul_addr : "http://${attr.unique.network.ip-address}:8500"
        WHAGO_NOMAD_NAMESPACE   = "default"
        WHAGO_NOMAD_DATACENTERS = join(",", var.datacenters)
        WHAGO_WAHA_IMAGE        = var.waha_image
        WHAGO_WAHA_ENGINE       = "GOWS"
      }
      template {
        data        = local.secrets_template
        destination = "secrets/whago.env"
        env         = true
        change_mode = "restart"
      }
      resources {
        cpu    = 500
        memory = 512
      }
      kill_timeout = "20s"
    }
  }

  group "worker" {
    count = var.worker_count

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "fail"
    }

    task "worker" {
      driver = "docker"
      config {
        image   = var.image
        command = "whago"
        args    = ["worker"]
      }
      env {
        WHAGO_ENV               = "production"
        WHAGO_PUBLIC_URL        = var.public_url
        WHAGO_SCHEDULER         = "nomad"
        WHAGO_NOMAD_ADDR        = "http://${attr.unique.network.ip-address}:4646"
        WHAGO_CONSUL_ADDR       = var.consul_addr != "" ? var.consul_addr : "http://${attr.unique.network.ip-address}:8500"
        WHAGO_NOMAD_NAMESPACE   = "default"
        WHAGO_NOMAD_DATACENTERS = join(",", var.datacenters)
        WHAGO_WAHA_IMAGE        = var.waha_image
        WHAGO_WAHA_ENGINE       = "GOWS"
      }
      template {
        data        = local.secrets_template
        destination = "secrets/whago.env"
        env         = true
        change_mode = "restart"
      }
      resources {
        cpu    = 500
        memory = 512
      }
      # Let in-flight jobs (provision, teardown) finish before SIGKILL.
      kill_timeout = "30s" # the client's default max_kill_timeout; longer is cut to it
    }
  }
}
