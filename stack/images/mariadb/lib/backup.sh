# shellcheck shell=bash
# The backup volume's layout, the checks a backup must pass before anything uses it, and the
# metrics file. Sourced by hsc-backup and hsc-restore after common.sh.
#
#   $HSC_BACKUP_DIR/
#     full/<id>/dump.sql.gz          consistent logical dump (mariadb-dump --single-transaction)
#     full/<id>/manifest.json        source, times, binlog coordinates and GTID, sizes, sha256
#     full/<id>/VERIFIED | FAILED    outcome of the last verification (restore verifies again)
#     full/.partial-<id>/            a backup being written; never read, removed by pruning
#     binlogs/<instance>/<file>      archived binary logs of one server instance
#     binlogs/<instance>/<file>.json {file, size, sha256, archived_at_epoch}; written last
#     state/                         counters and last-run records behind the metrics
#     metrics/hsc_backup.prom        Prometheus text format for node exporter's textfile
#                                    collector (HSC_BACKUP_METRICS_FILE moves it)

HSC_BACKUP_DIR=${HSC_BACKUP_DIR:-/backups}
HSC_BACKUP_METRICS_FILE=${HSC_BACKUP_METRICS_FILE:-$HSC_BACKUP_DIR/metrics/hsc_backup.prom}

hsc_backup_ids() {
  # Newest first; ids are UTC timestamps, so name order is time order.
  find "$HSC_BACKUP_DIR/full" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%f\n' 2>/dev/null | sort -r
}

# hsc_verify_full DIR: prints why the backup is unusable and returns 1, or returns 0.
hsc_verify_full() {
  local dir=$1 manifest="$1/manifest.json" n i name size sha actual last
  [ -f "$manifest" ] || { echo "manifest.json is missing"; return 1; }
  if ! jq -e '.format == 1 and .kind == "full"
      and (.binlog.file | type == "string" and length > 0)
      and (.binlog.position | type == "number")
      and any(.files[]; .name == "dump.sql.gz")' "$manifest" >/dev/null 2>&1; then
    echo "manifest.json is unreadable or incomplete"
    return 1
  fi
  n=$(jq '.files | length' "$manifest")
  for ((i = 0; i < n; i++)); do
    name=$(jq -r ".files[$i].name" "$manifest")
    size=$(jq -r ".files[$i].size" "$manifest")
    sha=$(jq -r ".files[$i].sha256" "$manifest")
    [[ $name =~ ^[A-Za-z0-9._-]+$ ]] || { echo "manifest.json lists an unexpected file name"; return 1; }
    [ -f "$dir/$name" ] || { echo "$name is missing"; return 1; }
    actual=$(stat -c %s "$dir/$name")
    if [ "$actual" != "$size" ]; then
      echo "$name is $actual bytes but the manifest says $size: truncated or overwritten"
      return 1
    fi
    actual=$(sha256sum "$dir/$name" | cut -d' ' -f1)
    [ "$actual" = "$sha" ] || { echo "$name does not match its sha256 in the manifest: corrupted"; return 1; }
  done
  # The checksum proves the file is the one that was written; these two prove that what was
  # written is a whole dump (a dump cut short by a crash can still be a valid gzip stream).
  if ! last=$(gzip -dc "$dir/dump.sql.gz" 2>/dev/null | tail -n 1); then
    echo "dump.sql.gz fails gzip's integrity check"
    return 1
  fi
  case $last in
    "-- Dump completed"*) ;;
    *)
      echo "dump.sql.gz does not end with mariadb-dump's completion line: the dump did not finish"
      return 1
      ;;
  esac
}

# hsc_record_verification DIR REASON: REASON empty means it passed. Counts failures for the
# hsc_backup_verify_failures_total metric. Best effort: restore may see a read-only volume.
hsc_record_verification() {
  local dir=$1 reason=$2 now
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  {
    if [ -z "$reason" ]; then
      rm -f "$dir/FAILED"
      printf '%s\n' "$now" >"$dir/VERIFIED"
    else
      rm -f "$dir/VERIFIED"
      printf '%s %s\n' "$now" "$reason" >"$dir/FAILED"
      hsc_state_increment verify_failures_total
    fi
  } 2>/dev/null || hsc_log "WARNING: could not record the verification result in $dir (read-only?)"
}

# hsc_state_get NAME [DEFAULT]: DEFAULT is 0 when not given (counters).
hsc_state_get() { cat "$HSC_BACKUP_DIR/state/$1" 2>/dev/null || printf '%s' "${2-0}"; }
hsc_state_set() {
  mkdir -p "$HSC_BACKUP_DIR/state"
  printf '%s\n' "$2" >"$HSC_BACKUP_DIR/state/$1.tmp" && mv -f "$HSC_BACKUP_DIR/state/$1.tmp" "$HSC_BACKUP_DIR/state/$1"
}
hsc_state_increment() { hsc_state_set "$1" "$(($(hsc_state_get "$1") + 1))"; }

# hsc_verify_binlog DIR FILE: the archived binary log FILE matches its record.
hsc_verify_binlog() {
  local dir=$1 file=$2 size sha actual
  [ -f "$dir/$file" ] && [ -f "$dir/$file.json" ] || { echo "binary log $file is not in the archive"; return 1; }
  size=$(jq -r '.size' "$dir/$file.json" 2>/dev/null) || { echo "binary log $file: unreadable record"; return 1; }
  sha=$(jq -r '.sha256' "$dir/$file.json")
  actual=$(stat -c %s "$dir/$file")
  [ "$actual" = "$size" ] || { echo "binary log $file is $actual bytes but was archived with $size: truncated"; return 1; }
  actual=$(sha256sum "$dir/$file" | cut -d' ' -f1)
  [ "$actual" = "$sha" ] || { echo "binary log $file does not match its archived sha256: corrupted"; return 1; }
}

# Rewrites the metrics file from the backup volume's state (atomically: the collector never
# reads half a file).
hsc_write_metrics() {
  local newest="" id dir verified=0 failed=0 out tmp kind at ok
  while read -r id; do
    [ -n "$id" ] || continue
    dir="$HSC_BACKUP_DIR/full/$id"
    if [ -f "$dir/VERIFIED" ]; then
      verified=$((verified + 1))
      [ -n "$newest" ] || newest=$dir
    elif [ -f "$dir/FAILED" ]; then
      failed=$((failed + 1))
    fi
  done < <(hsc_backup_ids)
  out=$HSC_BACKUP_METRICS_FILE
  mkdir -p "$(dirname "$out")"
  tmp="$out.$$.tmp"
  {
    echo '# HELP hsc_backup_last_success_timestamp_seconds Completion time of the newest full backup that passed verification.'
    echo '# TYPE hsc_backup_last_success_timestamp_seconds gauge'
    echo '# HELP hsc_backup_last_size_bytes Size of the newest verified full backup.'
    echo '# TYPE hsc_backup_last_size_bytes gauge'
    echo '# HELP hsc_backup_last_duration_seconds How long the newest verified full backup took.'
    echo '# TYPE hsc_backup_last_duration_seconds gauge'
    if [ -n "$newest" ]; then
      jq -r '"hsc_backup_last_success_timestamp_seconds \(.completed_at_epoch)",
             "hsc_backup_last_size_bytes \([.files[].size] | add)",
             "hsc_backup_last_duration_seconds \(.duration_seconds)"' "$newest/manifest.json"
    fi
    echo '# HELP hsc_backup_verify_failures_total Verifications that found a backup or archived binary log unusable.'
    echo '# TYPE hsc_backup_verify_failures_total counter'
    echo "hsc_backup_verify_failures_total $(hsc_state_get verify_failures_total)"
    echo '# HELP hsc_backup_backups Full backups on the backup volume by the outcome of their last verification.'
    echo '# TYPE hsc_backup_backups gauge'
    echo "hsc_backup_backups{status=\"verified\"} $verified"
    echo "hsc_backup_backups{status=\"failed\"} $failed"
    echo '# HELP hsc_backup_last_run_timestamp_seconds When a backup job of that kind last ran.'
    echo '# TYPE hsc_backup_last_run_timestamp_seconds gauge'
    echo '# HELP hsc_backup_last_run_success Whether that last run succeeded (1) or failed (0).'
    echo '# TYPE hsc_backup_last_run_success gauge'
    for kind in full binlogs; do
      at="" ok=""
      read -r at ok < <(hsc_state_get "last_run_$kind" "") || true
      if [ -n "${at:-}" ]; then
        echo "hsc_backup_last_run_timestamp_seconds{kind=\"$kind\"} $at"
        echo "hsc_backup_last_run_success{kind=\"$kind\"} $ok"
      fi
    done
    echo '# HELP hsc_backup_binlog_last_archive_timestamp_seconds Binary logs written before this time are archived.'
    echo '# TYPE hsc_backup_binlog_last_archive_timestamp_seconds gauge'
    at=$(hsc_state_get binlog_archived_before "")
    [ -z "$at" ] || echo "hsc_backup_binlog_last_archive_timestamp_seconds $at"
  } >"$tmp"
  mv -f "$tmp" "$out"
}
