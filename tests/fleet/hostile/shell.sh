#!/bin/sh
# The "shell" of a hostile test host: what an SSH session gets instead of the command it
# asked for ($SSH_ORIGINAL_COMMAND). One profile per host (boot.sh passes it); each is a way a
# broken or compromised host answers. Nothing here is tendhost output passed off as real: it
# is what the host really prints, over real sshd.
case "$1" in
endless)
    # Prints for ever (until the session is closed).
    exec yes 'tendhost hostile host: this line repeats for ever'
    ;;
huge-line)
    # One line of 100 MB, then a normal exit.
    head -c 100000000 /dev/zero | tr '\000' 'x'
    echo
    exit 0
    ;;
garbage)
    # 8 MB of binary garbage on stdout and stderr, then "success".
    head -c 4000000 /dev/urandom
    head -c 4000000 /dev/urandom >&2
    exit 0
    ;;
never-exits)
    # Accepts the command and never answers or ends.
    exec sleep infinity
    ;;
exits-mid-line)
    # Starts to answer like apt, then dies in the middle of a line.
    printf 'Reading package lists... Done\nInst tendhost-demo [1.0] (1.1 tendhost:bookw'
    kill -9 $$
    ;;
trickle)
    # One byte a second, for ever.
    while :; do printf x; sleep 1; done
    ;;
reboot-probe)
    # Runs every command but the reboot-required probe, which gets nonsense.
    case "$SSH_ORIGINAL_COMMAND" in
    *reboot-required*)
        printf '@@tendhost:pkgs@@\n@@tendhost:flag@@\n\377\376 1e300 -1 \033[2J\n@@tendhost:@@\n'
        head -c 100000 /dev/urandom | tr -d '\000'
        exit 0
        ;;
    *)
        exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"
        ;;
    esac
    ;;
*)
    echo "shell.sh: unknown profile $1" >&2
    exit 2
    ;;
esac
