#!/bin/sh
# PID 1 of a hostile test host (tests/src/fleet/hostile.rs): the base image's sshd, but every
# SSH session runs shell.sh PROFILE instead of the command it asked for (ForceCommand; the
# command is in $SSH_ORIGINAL_COMMAND). This folder is mounted read-only at
# /srv/tendhost/hostile; the image itself is the unchanged base image.
set -e
mkdir -p /run/sshd
chmod 0755 /run/sshd
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e -o "ForceCommand=/bin/sh /srv/tendhost/hostile/shell.sh $1"
