# Nightly backups of WHAGO's database and WAHA's sessions databases (periodic batch job).
#
#   nomad job run -var backup_volume=whago-backups nomad/whago-backup.nomad.hcl   # from the repo root
#
# Reads the same Nomad Variables as nomad/whago.nomad.hcl (path nomad/jobs/whago: database_url,
# waha_sessions_database_url); the script is nomad/backup/whago-backup.sh, rendered into the task.
# Dumps land in the host volume `backup_volume` under <UTC timestamp>/; copy that volume off the
# node (restic, rclone, a snapshot) — a backup on the database's own disk is not a backup.
# Restore: README.md, "Backups and restore".

variable "datacenters" {
  type    = list(string)
  default = ["dc1"]
}
variable "backup_volume" {
  type        = string
  description = "a Nomad host volume for the dumps"
}
variable "schedule" {
  type    = string
  default = "17 3 * * *" # daily, 03:17 UTC
}
variable "retention_days" {
  type    = number
  default = 14
}
variable "postgres_image" {
  type    = string
  default = "postgres:16-alpine" # pg_dump must be at least the server's major version
}

job "whago-backup" {
  type        = "batch"
  datacenters = var.datacenters
  meta {
    created_by = "whago"
    component  = "backup"
  }

  periodic {
    crons            = [var.schedule]
    time_zone        = "UTC"
    prohibit_overlap = true
  }

  group "backup" {
    volume "backups" {
      type      = "host"
      source    = var.backup_volume
      read_only = false
    }

    restart {
      attempts = 2
      delay    = "2m"
      mode     = "fail"
    }

    task "dump" {
      driver = "docker"

      config {
        image   = var.postgres_image
        command = "/bin/sh"
        args    = ["/local/whago-backup.sh"]
      }

      volume_mount {
        volume      = "backups"
        destination = "/backups"
      }

      env {
        BACKUP_DIR            = "/backups"
        BACKUP_RETENTION_DAYS = var.retention_days
      }

      template {
        data        = file("nomad/backup/whago-backup.sh")
        destination = "local/whago-backup.sh"
        perms       = "0755"
        # the script is shell, not a template: keep its ${...} and {{ }} as they are
        left_delimiter  = "[[["
        right_delimiter = "]]]"
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/whago" }}
          WHAGO_DATABASE_URL={{ .database_url }}
          WHAGO_WAHA_SESSIONS_DATABASE_URL={{ .waha_sessions_database_url }}
          {{ end }}
        EOT
        destination = "secrets/backup.env"
        env         = true
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
