#!/usr/bin/env bash
# Makes the Containerfile's base image, debian:bookworm-slim, locally: no image registry is reachable from the
# machines this project is tested on, so the base is `debootstrap --variant=minbase` of the same Debian release,
# imported into buildah's storage under the name the Containerfile uses. The root filesystem is cached outside
# the clone (CONDUCTOR_BASE_CACHE, default /var/cache/conductor/base), as the other test peers are.
#
#   deploy/base-image.sh            # idempotent: does nothing when the image is there
set -euo pipefail
release=${DEBIAN_RELEASE:-bookworm}
image="docker.io/library/debian:${release}-slim"
cache=${CONDUCTOR_BASE_CACHE:-/var/cache/conductor/base}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if buildah inspect --type image "$image" >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$cache"
tarball="$cache/$release-minbase.tar"
if [ ! -s "$tarball" ]; then
  root=$(mktemp -d "$cache/root.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "==> debootstrap --variant=minbase $release (once, into $cache)" >&2
  debootstrap --variant=minbase "$release" "$root" "$mirror" >&2
  # As the official slim image: no apt lists or caches in the layer.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$root" -cf "$tarball.part" .
  mv "$tarball.part" "$tarball"
fi
echo "==> importing $tarball as $image" >&2
container=$(buildah from scratch)
buildah add "$container" "$tarball" / >/dev/null
buildah config --cmd /bin/bash "$container"
buildah commit --quiet "$container" "$image" >/dev/null
buildah rm "$container" >/dev/null
