#!/bin/sh
# "reboot" / "shutdown" of a test-fleet host: PID 1 (sshd) ends a moment later, and
# Docker's restart policy brings the host back, like a machine restarting. The delay
# lets the calling SSH command return before its connection drops.
( sleep 1; kill -TERM 1 ) >/dev/null 2>&1 </dev/null &
echo "tendhost test host: rebooting"
