#!/usr/bin/env bash
# Builds one test-fleet host image when it is missing and prints its name.
#
#   tests/fleet/build.sh base|dnf
#
# The tag is a hash of the recipe files (this script, rootfs/, base/, and dnf/ for the
# dnf flavour; the debootstrapped rootfs image is keyed by rootfs/ alone), so an image
# is reused while it exists and rebuilt when its recipe changes; older builds are removed.
# A lock file makes parallel callers (nextest runs every test in its own process) wait
# for one build instead of racing. Only stdout's last line is the image name; progress
# goes to stderr.
set -euo pipefail

flavour=${1:?usage: build.sh base|dnf}
fleet_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lock_file=${TENDHOST_FLEET_LOCK:-/tmp/tendhost-fleet-images.lock}

recipe_hash() {
    # Hash of the named recipe files and folders; file names are part of it.
    (cd "$fleet_dir" && find "$@" -type f -print0 | LC_ALL=C sort -z |
        xargs -0 sha256sum) | sha256sum | cut -c1-16
}

debian_mirror() {
    # The Debian mirror this machine already uses (deb822 or one-line sources).
    local uri
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
        grep -v -- '-security' | head -n1 || true)
    if [[ -z $uri ]]; then
        uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
            awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

image_exists() {
    docker image inspect "$1" >/dev/null 2>&1
}

prune_older() {
    # Removes this machine's older builds of one image kind (the recipe changed). An
    # image a running host still uses stays: docker rmi refuses, and that is fine.
    local kind=$1 keep=$2 image
    docker images --filter "label=tendhost.fleet.image=$kind" \
        --format '{{.Repository}}:{{.Tag}}' | while read -r image; do
        [[ $image == "$keep" || $image == *'<none>'* ]] || docker rmi "$image" >/dev/null 2>&1 || true
    done
}

build_base() {
    local tag=$1 rootfs_image mirror work
    rootfs_image="tendhost-fleet-rootfs:$(recipe_hash rootfs)"
    mirror=$(debian_mirror)
    if ! image_exists "$rootfs_image"; then
        local SUITE VARIANT INCLUDE
        eval "$(grep -E '^(SUITE|VARIANT|INCLUDE)=[A-Za-z0-9,.+-]+$' "$fleet_dir/rootfs/debootstrap.conf")"
        work=$(mktemp -d /tmp/tendhost-rootfs.XXXXXX)
        echo "tendhost fleet: debootstrap $SUITE from $mirror (about a minute)" >&2
        debootstrap --variant="$VARIANT" --include="$INCLUDE" \
            "$SUITE" "$work/rootfs" "$mirror" >&2
        tar -C "$work/rootfs" -c . |
            docker import --message "tendhost fleet rootfs" \
                --change "LABEL tendhost.fleet.image=rootfs" - "$rootfs_image" >&2
        rm -rf "$work"
        prune_older rootfs "$rootfs_image"
    fi
    docker build --quiet --label tendhost.fleet.image=base \
        --build-arg "ROOTFS=$rootfs_image" -t "$tag" "$fleet_dir/base" >&2
}

build_dnf() {
    local tag=$1 base
    base=$(ensure base)
    docker build --quiet --label tendhost.fleet.image=dnf \
        --build-arg "BASE=$base" --build-arg "MIRROR=$(debian_mirror)" \
        -t "$tag" "$fleet_dir/dnf" >&2
}

image_tag() {
    case $1 in
        base) echo "tendhost-fleet-base:$(recipe_hash build.sh rootfs base)" ;;
        dnf) echo "tendhost-fleet-dnf:$(recipe_hash build.sh rootfs base dnf)" ;;
        *) echo "build.sh: unknown flavour '$1' (expected base or dnf)" >&2; return 2 ;;
    esac
}

ensure() {
    local flavour=$1 tag
    tag=$(image_tag "$flavour")
    if ! image_exists "$tag"; then
        "build_$flavour" "$tag"
        prune_older "$flavour" "$tag"
    fi
    echo "$tag"
}

# Fast path without the lock; the locked path re-checks, so only one process builds.
tag=$(image_tag "$flavour")
if image_exists "$tag"; then
    echo "$tag"
    exit 0
fi

exec 9>"$lock_file"
flock 9
ensure "$flavour"
