#!/usr/bin/env bash
# Builds EphemeralCI's container images as OCI archives, without a container daemon or a registry:
#   eng/images.sh                 every image
#   eng/images.sh server intake   only these
#   eng/images.sh --prefetch server   only make (and cache) their Debian roots: network-bound, so eng/test.sh
#                                     starts it in the background while the solution builds
# Images: intake secrets-broker cache provisioner github-actions (the services), server (all-in-one),
# runner-shell, runner-dotnet, runner-node (runner images for deploy/kubernetes's templates).
#
# Each image is a Debian bookworm root made by mmdebstrap from the Debian mirror (layer 1) plus our
# own files (layer 2), assembled with umoci and written to $OUT/<image>-<version>.oci.tar (an
# oci-archive whose one tag is the version). Push one with skopeo (docs/deploy.md, "Images"):
#   skopeo copy oci-archive:artifacts/images/intake-0.1.0.oci.tar docker://registry.example.com/ephemeralci/intake:0.1.0
# - services: a root of libraries only (libc, libstdc++, OpenSSL, CA certificates, time zones):
#   no shell, no package manager; the service published self-contained (its own .NET runtime, no SDK)
#   in /app; user app (1654:1654), port 8080.
# - server: a minimal Debian (it runs jobs in bubblewrap over the image's own /usr, so jobs get a
#   shell and coreutils) plus bubblewrap, libseccomp2, git, git-lfs (runners share its /usr); data in /var/lib/ephemeralci; port 5180.
# - runners: a minimal Debian with git, git-lfs and common tools, the natively compiled runner agent at
#   /opt/eci/agent/EphemeralCI.RunnerAgent, user runner (1000); -dotnet adds this machine's .NET SDK,
#   -node Debian's Node.js and npm.
# Needs: root (or unprivileged user namespaces), mmdebstrap, umoci, the .NET SDK, gcc (native agent).
# Settings (environment): ECI_IMAGE_VERSION (0.1.0), ECI_IMAGES_OUT (artifacts/images),
# ECI_DEBIAN_MIRROR (http://deb.debian.org/debian), ECI_IMAGE_SOURCE (org.opencontainers.image.source).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VERSION="${ECI_IMAGE_VERSION:-0.1.0}"
OUT="${ECI_IMAGES_OUT:-$ROOT/artifacts/images}"
MIRROR="${ECI_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
CACHE="${ECI_TOOLS:-$HOME/.cache/ephemeralci}/image-roots"
RID=linux-x64
SERVICES=(intake secrets-broker cache provisioner github-actions)
ALL=("${SERVICES[@]}" server runner-shell runner-dotnet runner-node)
APP_UID=1654
RUNNER_UID=1000

log() { echo "images: $*" >&2; }
die() { echo "images: $*" >&2; exit 1; }

for tool in mmdebstrap umoci dotnet; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: apt-get install mmdebstrap umoci; the .NET SDK for dotnet)"
done
[ "$(id -u)" -eq 0 ] || die "run as root: mmdebstrap and umoci keep the images' file ownership (root:root) only as root"

prefetch=false
if [ "${1:-}" = --prefetch ]; then prefetch=true; shift; fi
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${ALL[@]}")
for w in "${wanted[@]}"; do
  [[ " ${ALL[*]} " == *" $w "* ]] || die "unknown image '$w' (one of: ${ALL[*]})"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/eci-images.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$CACHE"
REVISION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# A Debian root as a tar, made once per (variant, package list, mirror) and kept in $CACHE.
debian_root() { # variant packages(comma separated) -> prints the tar's path
  local variant="$1" packages="$2"
  local key; key="$(printf '%s\n' "$SUITE" "$MIRROR" "$variant" "$packages" | sha256sum | cut -c1-16)"
  local tar="$CACHE/$SUITE-$variant-$key.tar"
  # One maker per root: a prefetch in the background and a build that needs the root wait for each other.
  local lock; exec {lock}>"$tar.lock"; flock "$lock"
  if [ ! -s "$tar" ]; then
    log "making a Debian $SUITE root ($variant: $packages)"
    mmdebstrap --quiet --variant="$variant" --include="$packages" --format=tar \
      --aptopt='Acquire::Retries "3"' "$SUITE" "$tar.tmp" "$MIRROR" >&2
    mv "$tar.tmp" "$tar"
  fi
  exec {lock}>&-
  echo "$tar"
}

# Unpacks a root and makes it a container's root: users, CA bundle, writable /tmp, no apt caches.
prepare_root() { # tar dir user uid home
  local tar="$1" dir="$2" user="$3" uid="$4" home="$5"
  mkdir -p "$dir"
  tar -xf "$tar" -C "$dir" --numeric-owner
  # The extract variant runs no maintainer scripts: write what they would have.
  if [ ! -s "$dir/etc/ssl/certs/ca-certificates.crt" ] && [ -d "$dir/usr/share/ca-certificates" ]; then
    mkdir -p "$dir/etc/ssl/certs"
    find "$dir/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z | xargs -0 cat >"$dir/etc/ssl/certs/ca-certificates.crt"
  fi
  [ -s "$dir/etc/passwd" ] || printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$dir/etc/passwd"
  [ -s "$dir/etc/group" ] || printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
  grep -q "^$user:" "$dir/etc/passwd" || echo "$user:x:$uid:$uid:$user:$home:/usr/sbin/nologin" >>"$dir/etc/passwd"
  grep -q "^$user:" "$dir/etc/group" || echo "$user:x:$uid:" >>"$dir/etc/group"
  mkdir -p "$dir/tmp" "$dir$home" && chmod 1777 "$dir/tmp" && chown "$uid:$uid" "$dir$home"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
    "$dir"/usr/share/lintian "$dir"/var/log/*
  : >"$dir/etc/resolv.conf"; echo localhost >"$dir/etc/hostname"
}

publish() { # project output [extra msbuild args...]
  local project="$1" output="$2"; shift 2
  log "publishing $project"
  dotnet publish "$project" -c Release -r "$RID" -o "$output" -nologo -v quiet "$@" >&2
  # Symbols stay out of the images (a global DebugType=None would rebuild every project differently).
  find "$output" -name '*.pdb' -delete
}

# The image: layer 1 the root, layer 2 our files (a directory laid out as from /), then the config.
assemble() { # name root-dir files-dir user entrypoint(json-less, one path) description [umoci config args...]
  local name="$1" rootdir="$2" files="$3" user="$4" entry="$5" description="$6"; shift 6
  local layout="$WORK/$name.layout"
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$VERSION"
  umoci insert --image "$layout:$VERSION" --history.created_by "mmdebstrap $SUITE ($MIRROR)" "$rootdir" /
  umoci insert --image "$layout:$VERSION" --history.created_by "eng/images.sh $name" "$files" /
  local labels=(
    "org.opencontainers.image.title=ephemeralci/$name"
    "org.opencontainers.image.description=$description"
    "org.opencontainers.image.version=$VERSION"
    "org.opencontainers.image.revision=$REVISION"
    "org.opencontainers.image.created=$CREATED"
    "org.opencontainers.image.vendor=EphemeralCI"
    "org.opencontainers.image.base.name=debian:$SUITE"
  )
  [ -z "${ECI_IMAGE_SOURCE:-}" ] || labels+=("org.opencontainers.image.source=$ECI_IMAGE_SOURCE")
  local args=(--config.user "$user" --config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  [ -z "$entry" ] || args+=(--config.entrypoint "$entry")
  for l in "${labels[@]}"; do args+=(--config.label "$l" --manifest.annotation "$l"); done
  umoci config --image "$layout:$VERSION" --history.created_by "eng/images.sh $name (config)" "${args[@]}" "$@"
  umoci gc --layout "$layout"
  # An oci-archive is a tar of the layout (what `skopeo copy oci-archive:` and podman load read).
  tar -C "$layout" -cf "$OUT/$name-$VERSION.oci.tar.tmp" --numeric-owner --owner=0 --group=0 .
  mv "$OUT/$name-$VERSION.oci.tar.tmp" "$OUT/$name-$VERSION.oci.tar"
  log "wrote $OUT/$name-$VERSION.oci.tar ($(du -h "$OUT/$name-$VERSION.oci.tar" | cut -f1))"
}

SERVICE_PACKAGES=libc6,libgcc-s1,libstdc++6,libssl3,zlib1g,ca-certificates,tzdata,netbase,base-files
SERVER_PACKAGES=ca-certificates,tzdata,netbase,bubblewrap,libseccomp2,libssl3,git,git-lfs,procps
RUNNER_PACKAGES=ca-certificates,tzdata,netbase,git,git-lfs,curl,openssh-client,xz-utils,zstd,unzip,make,procps,less,jq

project_of() {
  case "$1" in
    intake) echo src/EphemeralCI.Intake.Host ;;
    secrets-broker) echo src/EphemeralCI.SecretsBroker.Host ;;
    cache) echo src/EphemeralCI.Cache.Host ;;
    provisioner) echo src/EphemeralCI.Provisioner.Host ;;
    github-actions) echo src/EphemeralCI.GitHubActions.Host ;;
  esac
}

build_service() { # name
  local name="$1" project; project="$(project_of "$1")"
  local root="$WORK/$name.root" files="$WORK/$name.files"
  prepare_root "$(debian_root extract "$SERVICE_PACKAGES")" "$root" app "$APP_UID" /home/app
  publish "$project" "$files/app" --self-contained -p:UseAppHost=true
  local exe; exe="$(basename "$project")"
  [ -x "$files/app/$exe" ] || die "$project published no executable $exe"
  assemble "$name" "$root" "$files" "$APP_UID:$APP_UID" "/app/$exe" "EphemeralCI $name service" \
    --config.workingdir /app \
    --config.env ASPNETCORE_HTTP_PORTS=8080 --config.env DOTNET_RUNNING_IN_CONTAINER=true \
    --config.env DOTNET_gcServer=0 --config.env HOME=/tmp --config.exposedports 8080/tcp
}

build_server() {
  local root="$WORK/server.root" files="$WORK/server.files"
  prepare_root "$(debian_root minbase "$SERVER_PACKAGES")" "$root" app "$APP_UID" /home/app
  publish src/EphemeralCI.Server "$files/app" --self-contained -p:UseAppHost=true
  mkdir -p "$files/var/lib/ephemeralci" && chown "$APP_UID:$APP_UID" "$files/var/lib/ephemeralci" && chmod 0700 "$files/var/lib/ephemeralci"
  assemble server "$root" "$files" "$APP_UID:$APP_UID" /app/EphemeralCI.Server "EphemeralCI all-in-one server" \
    --config.workingdir /app \
    --config.env ASPNETCORE_URLS=http://+:5180 --config.env EphemeralCI__DataDirectory=/var/lib/ephemeralci \
    --config.env DOTNET_RUNNING_IN_CONTAINER=true --config.env HOME=/home/app \
    --config.exposedports 5180/tcp --config.volume /var/lib/ephemeralci
}

AGENT=""
native_agent() {
  if [ -z "$AGENT" ]; then
    AGENT="$WORK/agent"
    publish src/EphemeralCI.RunnerAgent "$AGENT"
    [ -x "$AGENT/EphemeralCI.RunnerAgent" ] || die "the runner agent was not compiled natively (gcc or clang missing?)"
  fi
  echo "$AGENT/EphemeralCI.RunnerAgent"
}

build_runner() { # name extra-packages
  local name="$1" extra="$2" agent; agent="$(native_agent)"
  local root="$WORK/$name.root" files="$WORK/$name.files"
  prepare_root "$(debian_root minbase "$RUNNER_PACKAGES$extra")" "$root" runner "$RUNNER_UID" /home/runner
  mkdir -p "$files/opt/eci/agent" "$files/workspace"
  install -m 0755 "$agent" "$files/opt/eci/agent/EphemeralCI.RunnerAgent"
  chown "$RUNNER_UID:$RUNNER_UID" "$files/workspace"
  local env=()
  if [ "$name" = runner-dotnet ]; then
    # This machine's SDK (the one that builds EphemeralCI), as the runners' toolchain.
    local sdk; sdk="$(dirname "$(readlink -f "$(command -v dotnet)")")"
    mkdir -p "$files/usr/share/dotnet" "$files/usr/bin"
    cp -a "$sdk/." "$files/usr/share/dotnet/"
    ln -sf ../share/dotnet/dotnet "$files/usr/bin/dotnet"
    env+=(--config.env DOTNET_ROOT=/usr/share/dotnet --config.env DOTNET_CLI_TELEMETRY_OPTOUT=1 --config.env DOTNET_NOLOGO=1)
  fi
  assemble "$name" "$root" "$files" "$RUNNER_UID:$RUNNER_UID" "" "EphemeralCI runner ($name)" \
    --config.workingdir /workspace --config.cmd /opt/eci/agent/EphemeralCI.RunnerAgent \
    --config.env HOME=/tmp "${env[@]}"
}

if $prefetch; then
  for image in "${wanted[@]}"; do
    case "$image" in
      server) debian_root minbase "$SERVER_PACKAGES" ;;
      runner-shell) debian_root minbase "$RUNNER_PACKAGES" ;;
      runner-dotnet) debian_root minbase "$RUNNER_PACKAGES,libicu72" ;;
      runner-node) debian_root minbase "$RUNNER_PACKAGES,nodejs,npm" ;;
      *) debian_root extract "$SERVICE_PACKAGES" ;;
    esac
  done >/dev/null
  exit 0
fi

for image in "${wanted[@]}"; do
  case "$image" in
    server) build_server ;;
    runner-shell) build_runner runner-shell "" ;;
    runner-dotnet) build_runner runner-dotnet ",libicu72" ;;
    runner-node) build_runner runner-node ",nodejs,npm" ;;
    *) build_service "$image" ;;
  esac
done
