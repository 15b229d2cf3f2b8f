#!/bin/sh
# PID 1 of a test-fleet host. /run is a tmpfs (so a "reboot", i.e. a restart of the
# container, clears /var/run/reboot-required as on a real host), so sshd's privilege
# separation directory is made on every boot. Host keys are made on the first boot, so
# every host has its own and keeps it across reboots.
set -e
mkdir -p /run/sshd
chmod 0755 /run/sshd
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e
