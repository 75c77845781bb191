#!/bin/sh
# WHAGO backups: one custom-format pg_dump of WHAGO's database, and one of every WAHA sessions
# database, into $BACKUP_DIR/<UTC timestamp>/; backups older than $BACKUP_RETENTION_DAYS days go.
#
#   WHAGO_DATABASE_URL                 WHAGO's database (required)
#   WHAGO_WAHA_SESSIONS_DATABASE_URL   WAHA's sessions server (optional); every database on it whose
#                                      name starts with $WAHA_DATABASE_PREFIX is dumped
#   WAHA_DATABASE_PREFIX               default: waha
#   BACKUP_DIR                         default: /backups
#   BACKUP_RETENTION_DAYS              default: 14
#
# Run by nomad/whago-backup.nomad.hcl (periodic), or by hand. Passwords stay in the URLs, which
# are read from the environment and never printed. Restore: README.md, "Backups and restore".
set -eu

: "${WHAGO_DATABASE_URL:?WHAGO_DATABASE_URL is required}"
BACKUP_DIR="${BACKUP_DIR:-/backups}"
RETENTION="${BACKUP_RETENTION_DAYS:-14}"
PREFIX="${WAHA_DATABASE_PREFIX:-waha}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
TARGET="$BACKUP_DIR/$STAMP"
mkdir -p "$TARGET.partial"

# pg_dump takes a libpq URL; the database part is replaced for each WAHA database
with_database() {
  printf '%s' "$1" | sed -E "s#^([a-z]+://[^/]*)/[^?]*#\1/$2#"
}

pg_dump --format=custom --no-owner --file="$TARGET.partial/whago.dump" "$WHAGO_DATABASE_URL"
count=1

if [ -n "${WHAGO_WAHA_SESSIONS_DATABASE_URL:-}" ]; then
  databases="$(psql "$WHAGO_WAHA_SESSIONS_DATABASE_URL" -At -c \
    "SELECT datname FROM pg_database WHERE datname LIKE '${PREFIX}%' AND NOT datistemplate ORDER BY 1")"
  for name in $databases; do
    pg_dump --format=custom --no-owner --file="$TARGET.partial/waha-$name.dump" \
      "$(with_database "$WHAGO_WAHA_SESSIONS_DATABASE_URL" "$name")"
    count=$((count + 1))
  done
fi

# a backup counts only once complete: the rename is the commit
mv "$TARGET.partial" "$TARGET"
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '*Z' -mtime "+$RETENTION" -exec rm -rf {} +
find "$BACKUP_DIR" -mindepth 1 -maxdepth 1 -type d -name '*.partial' -mmin +1440 -exec rm -rf {} +
echo "backup $STAMP: $count database(s) in $TARGET; kept $RETENTION days"
