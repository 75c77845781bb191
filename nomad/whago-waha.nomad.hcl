# Per-tenant WAHA job: the human-readable twin of app/scheduler/nomad_job.py.
#
# The `nomad` scheduler adapter submits the JSON equivalent of this file through the HTTP API
# (`whago nomad render --user-id <uuid> --plan <plan>` prints that exact JSON). Keep both in step:
# tests/scheduler/test_nomad_job.py checks that names, ports, check and env vars agree.
#
# HCL block labels cannot hold variables (hashicorp/nomad#9522), so the job id below is a
# placeholder: replace USER_ID with the tenant's user id before `nomad job plan/run`, e.g.
# (TENANT_ID, not UID: bash's UID is read-only)
#   TENANT_ID=6f1c2b9e-3a4d-4e5f-8a7b-9c0d1e2f3a4b
#   sed "s/USER_ID/$TENANT_ID/" nomad/whago-waha.nomad.hcl > /tmp/job.hcl
#   nomad job plan -var user_id=$TENANT_ID -var-file=tenant.vars /tmp/job.hcl
# Durations here are HCL strings; the adapter sends integer nanoseconds (Nomad's JSON form).
# A private registry: add `auth { username = "..." password = "${WHAGO_REGISTRY_PASSWORD}" }`
# inside `config` by hand (config is opaque to Nomad: no dynamic blocks there); the adapter does
# this from WHAGO_WAHA_REGISTRY_USERNAME/PASSWORD.
#
# No secret in this file or in the registered job (anyone with read-job reads both): the task's
# secrets come from the Nomad Variable at the job's own path, which the job's workload identity
# reads without any policy, rendered by the `template` block below into environment variables.
# Write it BEFORE `nomad job run` (the task waits for it otherwise), e.g.
#   nomad var put -force nomad/jobs/whago-waha-$TENANT_ID \
#     WAHA_API_KEY="sha512:<hex>" WHATSAPP_SESSIONS_POSTGRESQL_URL="postgresql://..."
# (`whago nomad render` prints the item names; WHAGO writes the values itself, see README.md
# "Trust boundaries").

variable "user_id" {
  type        = string
  description = "Tenant user id (UUID). The job id and Consul service are whago-waha-<user_id>."
}
variable "plan" {
  type    = string
  default = "free"
}
variable "priority" {
  type        = number
  default     = 40
  description = "Nomad job priority by plan, as the adapter sets it: free 40, business 50, enterprise 60"
}
variable "email_domain" {
  type    = string
  default = ""
}
variable "namespace" {
  type    = string
  default = "default"
}
variable "region" {
  type    = string
  default = "global"
}
variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}
variable "node_pool" {
  type    = string
  default = "default" # Nomad >= 1.6
}
variable "image" {
  type    = string
  default = "devlikeapro/waha:gows-2026.7.1" # pinned (WHAGO_WAHA_IMAGE refuses untagged images)
}
variable "public_url" {
  type    = string
  default = "http://127.0.0.1:8000" # WHAGO_PUBLIC_URL, for the link in Nomad's UI
}
variable "engine" {
  type    = string
  default = "GOWS"
}
variable "sessions_in_database" {
  type    = bool
  default = false # true when the Variable holds WHATSAPP_SESSIONS_POSTGRESQL_URL; false = WAHA's local store
}
variable "cpu" {
  type        = number
  default     = 300 # WHAGO_WAHA_CPU_BASE_MHZ + WHAGO_WAHA_CPU_PER_CHIP_MHZ x plan's max chips
}
variable "memory" {
  type        = number
  default     = 456 # WHAGO_WAHA_MEMORY_BASE_MB + WHAGO_WAHA_MEMORY_PER_CHIP_MB x plan's max chips
}
variable "sessions_host_volume" {
  type    = string
  default = "" # WHAGO_WAHA_SESSIONS_HOST_VOLUME; empty = no volume
}

job "whago-waha-USER_ID" {
  name        = "whago-waha-${var.user_id}"
  type        = "service"
  priority    = var.priority # paying tenants' instances are placed first when the cluster is full
  namespace   = var.namespace
  region      = var.region
  datacenters = var.datacenters
  node_pool   = var.node_pool

  ui {
    description = "WAHA of a WHAGO tenant (${var.plan} plan)"
    link {
      label = "Tenant in WHAGO"
      url   = "${var.public_url}/admin/users/${var.user_id}"
    }
  }

  meta {
    whago_user_id      = var.user_id
    whago_plan         = var.plan
    whago_email_domain = var.email_domain
    created_by         = "whago"
    # moves only when WHAGO's job shape changes; an older WHAGO leaves newer jobs alone
    whago_job_generation = "3"
  }

  # WHAGO_NOMAD_CONSTRAINTS (JSON list) becomes job-level constraint blocks, e.g.:
  # constraint {
  #   attribute = "${node.class}"
  #   value     = "waha"
  # }

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = false # a revert would loop with WHAGO re-submitting the failed version
    canary            = 0
  }

  group "waha" {
    count = 1

    network {
      mode = "host"
      port "http" {
        to = 3000 # WAHA listens on 3000 in the container; the host port is dynamic
      }
    }

    # WAHA's local session files (when no sessions database is set) live on this disk: sticky
    # across restarts and updates, migrated when the allocation moves; lost with the node.
    ephemeral_disk {
      size    = 1024
      sticky  = true
      migrate = true
    }

    # A node cut off from the servers stops WAHA before a replacement logs in with the same
    # WhatsApp session.
    disconnect {
      stop_on_client_after = "60s"
      replace              = true
    }

    restart {
      attempts = 3
      interval = "10m"
      delay    = "15s"
      mode     = "fail"
    }

    reschedule {
      unlimited      = true
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
    }

    shutdown_delay = "5s"

    dynamic "volume" {
      for_each = var.sessions_host_volume == "" ? [] : [var.sessions_host_volume]
      labels   = ["sessions"]
      content {
        type      = "host"
        source    = volume.value
        read_only = false
      }
    }

    task "waha" {
      driver = "docker"

      config {
        image = var.image
        ports = ["http"]
        # relative to the task dir, so allowed without the docker plugin's volumes.enabled
        volumes = var.sessions_host_volume == "" && !var.sessions_in_database ? ["../alloc/data/waha-sessions:/app/.sessions"] : []
      }

      # Secrets (the tenant's API key hash, its sessions database URL, the registry password):
      # the job's Variable, rendered into the environment; a changed value restarts the task.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/whago-waha-${var.user_id}" }}{{ range .Tuples }}{{ .K }}={{ .V | toJSON }}
          {{ end }}{{ end }}
        EOT
        destination = "secrets/whago.env"
        env         = true
        change_mode = "restart"
      }

      env {
        WHATSAPP_DEFAULT_ENGINE             = var.engine
        WAHA_WORKER_ID                      = "whago-waha-${var.user_id}"
        WAHA_PRINT_QR                       = "False"
        WAHA_LOG_FORMAT                     = "JSON"
        WHATSAPP_API_KEY_EXCLUDE_PATH       = "ping"
        WAHA_API_KEY_EXCLUDE_PATH           = "ping"
        # No instance-wide WHATSAPP_HOOK_*: WHAGO gives every session its own signed webhook.
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }

      kill_timeout = "30s" # the client's default max_kill_timeout

      # At task level: check_restart's grace counts from the task's start, after the pull.
      service {
        name     = "whago-waha-${var.user_id}"
        provider = "consul"
        port     = "http"
        tags     = ["whago", "whago-waha", "user-${var.user_id}"]
        meta {
          whago_user_id = var.user_id
          whago_job_id  = "whago-waha-${var.user_id}"
        }

        check {
          name     = "whago-waha-ping"
          type     = "http"
          path     = "/ping"
          interval = "10s"
          timeout  = "2s"
          check_restart {
            limit           = 3
            grace           = "60s"
            ignore_warnings = false
          }
        }
      }

      logs {
        max_files     = 5
        max_file_size = 10
      }

      meta {
        whago_user_id = var.user_id
      }

      dynamic "volume_mount" {
        for_each = var.sessions_host_volume == "" ? [] : [1]
        content {
          volume      = "sessions"
          destination = "/app/.sessions"
          read_only   = false
        }
      }
    }
  }
}
