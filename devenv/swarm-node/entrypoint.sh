#!/bin/sh
# Starts dockerd in the node container: one node of the multi-node Swarm test. The container
# runs with every capability the machine grants (not --privileged: a machine whose bounding set
# lacks one, e.g. CAP_SYS_RESOURCE, refuses --privileged outright) and no seccomp/AppArmor
# profile, so it can make /sys and the cgroup hierarchies writable again for the engine inside.
set -eu
mount -o remount,rw /sys 2>/dev/null || true
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  # cgroup v2: the engine inside needs a subtree with the controllers delegated.
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
  sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
else
  # cgroup v1: Docker mounts each hierarchy read-only; with a private cgroup namespace
  # (docker run --cgroupns private) a fresh mount of each shows this container's own cgroup as
  # its root, writable, which is what the engine inside needs.
  mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
  awk '$3 == "cgroup" && $4 ~ /(^|,)ro(,|$)/ { print $2, $4 }' /proc/self/mounts | while read -r hierarchy options; do
    subsystems=$(printf '%s\n' "$options" | tr ',' '\n' | grep -Ev '^(ro|rw|nosuid|nodev|noexec|relatime)$' | paste -sd, -)
    umount "$hierarchy" && mount -t cgroup -o "rw,nosuid,nodev,noexec,relatime,$subsystems" cgroup "$hierarchy"
  done
fi
exec dockerd "$@"
