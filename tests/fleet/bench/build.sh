#!/usr/bin/env bash
# Builds the bench-only fleet host image (the base host plus python3 and python3-apt, for
# the fleet bench's Ansible baseline) when it is missing and prints its name. It sits on
# top of `../build.sh base` without changing that script, so the images the tests use
# keep their tags. The tag hashes the base image's tag and this folder; older bench builds
# are removed. Only stdout's last line is the image name; progress goes to stderr.
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lock_file=${TENDHOST_FLEET_LOCK:-/tmp/tendhost-fleet-images.lock}.bench

base=$("$bench_dir/../build.sh" base | tail -n 1)
hash=$( (echo "$base"; cd "$bench_dir" && find . -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum) | sha256sum | cut -c1-16)
tag="tendhost-fleet-bench:$hash"

exec 9>"$lock_file"
flock 9
if ! docker image inspect "$tag" >/dev/null 2>&1; then
    uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
        grep -v -- '-security' | head -n1 || true)
    if [[ -z $uri ]]; then
        uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
            awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
    fi
    echo "tendhost fleet: building $tag (python3, python3-apt) on $base" >&2
    docker build --quiet --label tendhost.fleet.image=bench \
        --build-arg "BASE=$base" --build-arg "MIRROR=${uri:-http://deb.debian.org/debian}" \
        -t "$tag" "$bench_dir" >&2
    docker images --filter label=tendhost.fleet.image=bench \
        --format '{{.Repository}}:{{.Tag}}' | while read -r image; do
        [[ $image == "$tag" || $image == *'<none>'* ]] || docker rmi "$image" >/dev/null 2>&1 || true
    done
fi
echo "$tag"
