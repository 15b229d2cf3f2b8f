#!/bin/sh
# "reboot" and "shutdown" (any arguments, e.g. `shutdown -r now`) of a test-fleet host:
# PID 1 (sshd) ends a moment later and Docker's restart policy brings the host back, like
# a machine restarting. The delay lets the calling SSH command return before its
# connection drops. As on a real host, only root may do it.
if [ "$(id -u)" != 0 ]; then
    echo "${0##*/}: must be root" >&2
    exit 1
fi
( sleep 1; kill -TERM 1 ) >/dev/null 2>&1 </dev/null &
echo "tendhost test host: rebooting"
