#!/usr/bin/env bash
# Makes the two base images the Dockerfile starts from on this machine, for building the image where Docker
# Hub cannot be reached:
#   docker.io/library/debian:bookworm-slim  a minimal Debian 12 (mmdebstrap), like the official slim image
#   docker.io/library/rust:1.95-bookworm    Debian 12 with gcc, make, git and curl, plus this machine's Rust 1.95.0
#                                           (rustup, cargo, rustc, rust-std, the wasm32 target, rustfmt, clippy)
# Everything comes from the Debian mirror and this machine. Then build as usual (see the Dockerfile):
#   scripts/docker-local-images.sh && podman build --format docker -t parlance .
# (--format docker keeps the HEALTHCHECK, which podman's default OCI format drops.)
#
# Needs root, mmdebstrap, podman or docker (`apt-get install --no-install-recommends mmdebstrap podman`), and
# the Rust toolchain 1.95.0 installed with rustup (RUSTUP_HOME and CARGO_HOME, by default ~/.rustup, ~/.cargo).
# About 4 minutes here; the images take about 80 MB and 1.2 GB.
#
# Settings (environment):
#   ENGINE=podman|docker  the engine the images go into (default: podman if installed, else docker)
#   ONLY=debian|rust      make only one of the two
#   DEBIAN_MIRROR=URL     default http://deb.debian.org/debian (and DEBIAN_SECURITY_MIRROR, .../debian-security)
#   EXTRA_CA_DIR=DIR      CA certificates (*.crt) the images trust besides Debian's, default
#                         /usr/local/share/ca-certificates: behind a TLS-inspecting proxy, cargo and pip inside the
#                         build reach crates.io and PyPI only with the proxy's CA. `EXTRA_CA_DIR=` adds none.
#
# Podman 4.3 from Debian 12 on a host whose root lacks CAP_SYS_RESOURCE or mixes cgroup v1 and v2 (as on the
# project's machines) needs runc and ulimits no higher than the host's; keep them in a file and point
# CONTAINERS_CONF at it for every podman command (crun 1.8 fails with "cgroups in hybrid mode not supported",
# and podman's default ulimits with "setrlimit `RLIMIT_NOFILE`: Operation not permitted"):
#   [containers]
#   default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
#   [engine]
#   runtime = "runc"
set -euo pipefail

RUST_VERSION=1.95.0
TOOLCHAIN="$RUST_VERSION-x86_64-unknown-linux-gnu"
SUITE=bookworm
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
RUST_IMAGE=docker.io/library/rust:1.95-bookworm
PATH_IN_IMAGE=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "docker-local-images: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

# Called back by mmdebstrap (a customize hook) with the new root file system: puts Rust where the official
# image has it (/usr/local/rustup, /usr/local/cargo), as a minimal profile plus the components the project's
# rust-toolchain.toml asks for. The HTML documentation (about 700 MB) stays out.
if [ "${1:-}" = __install-rust ]; then
  root="$2"
  source_dir=$(readlink -f "$rustup_home/toolchains/$TOOLCHAIN")
  dest="$root/usr/local/rustup/toolchains/$TOOLCHAIN"
  mkdir -p "$dest" "$root/usr/local/cargo/bin"
  tar -C "$source_dir" --exclude=./share/doc/rust/html -cf - . | tar -C "$dest" -xf -
  # ... and rustup no longer counts the documentation as installed.
  sed -i '/^rust-docs-/d' "$dest/lib/rustlib/components"
  rm -f "$dest"/lib/rustlib/manifest-rust-docs-*
  awk -v RS= -v ORS='\n\n' '!/pkg = "rust-docs"/' "$dest/lib/rustlib/multirust-config.toml" >"$root/tmp/multirust-config.toml"
  mv "$root/tmp/multirust-config.toml" "$dest/lib/rustlib/multirust-config.toml"
  cat >"$root/usr/local/rustup/settings.toml" <<EOF
version = "12"
default_toolchain = "$TOOLCHAIN"
profile = "minimal"
auto_self_update = "disable"

[overrides]
EOF
  install -m 0755 "$cargo_home/bin/rustup" "$root/usr/local/cargo/bin/rustup"
  for proxy in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt rust-gdb rust-gdbgui rust-lldb; do
    ln -f "$root/usr/local/cargo/bin/rustup" "$root/usr/local/cargo/bin/$proxy"
  done
  # As in the official image: any user may add targets and install crates.
  chmod -R a+w "$root/usr/local/rustup" "$root/usr/local/cargo"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap builds the root file systems with chroot)"
command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install --no-install-recommends mmdebstrap"
engine="${ENGINE:-}"
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman; else engine=docker; fi
fi
command -v "$engine" >/dev/null || die "$engine is missing: apt-get install --no-install-recommends podman (or set ENGINE)"
only="${ONLY:-}"
case "$only" in "" | debian | rust) ;; *) die "ONLY must be debian or rust, not '$only'" ;; esac

mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
sources=(
  "deb $mirror $SUITE main"
  "deb $mirror $SUITE-updates main"
  "deb $security_mirror $SUITE-security main"
)

extra_ca_dir="${EXTRA_CA_DIR-/usr/local/share/ca-certificates}"
extra_cas=()
if [ -n "$extra_ca_dir" ] && [ -d "$extra_ca_dir" ]; then
  shopt -s nullglob
  extra_cas=("$extra_ca_dir"/*.crt)
  shopt -u nullglob
fi

self=$(readlink -f "$0")
work=$(mktemp -d "${TMPDIR:-/var/tmp}/parlance-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Like the official slim image: no manuals, no documentation but the copyright files, no translations, and
# the same rules for every package installed later (they stay in /etc/dpkg/dpkg.cfg.d).
common=(
  --variant=minbase
  # /usr merged by mmdebstrap itself, as the official images are, instead of the usrmerge package (and Perl)
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --format=tar
  --aptopt='Acquire::Languages "none"'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
)
# And, as the official images do, apt drops downloaded packages after installing them (a Dockerfile's apt-get
# layer would otherwise keep every .deb) and keeps its lists compressed.
cat >"$work/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$work/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$work/docker-autoremove-suggests"
for conf in docker-clean docker-gzip-indexes docker-autoremove-suggests; do
  common+=(--customize-hook="upload $work/$conf /etc/apt/apt.conf.d/$conf")
done
# With docker-clean in place mmdebstrap's own clean-up no longer deletes apt's package caches (70 MB): now.
common+=(--customize-hook='rm -f "$1"/var/cache/apt/*.bin')
if ((${#extra_cas[@]})); then
  # Copied in as files; ca-certificates (installed now in the Rust image, later by the Dockerfile's stages)
  # adds them to the system's bundle.
  common+=(--customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"')
  for ca in "${extra_cas[@]}"; do
    common+=(--customize-hook="copy-in $(printf '%q' "$ca") /usr/local/share/ca-certificates")
  done
fi

# import TARBALL IMAGE [--change INSTRUCTION]...
import() {
  local tarball="$1" image="$2"
  shift 2
  step "Importing $image into $engine"
  "$engine" import --change 'CMD ["bash"]' "$@" "$tarball" "$image" >/dev/null
  rm -f "$tarball"
}

if [ "$only" != rust ]; then
  step "Debian $SUITE, slim ($DEBIAN_IMAGE)"
  mmdebstrap "${common[@]}" "$SUITE" "$work/debian.tar" "${sources[@]}"
  import "$work/debian.tar" "$DEBIAN_IMAGE" --change "ENV PATH=$PATH_IN_IMAGE"
fi

if [ "$only" != debian ]; then
  step "Debian $SUITE with Rust $RUST_VERSION ($RUST_IMAGE)"
  toolchain_dir=$(readlink -f "$rustup_home/toolchains/$TOOLCHAIN" || true)
  [ -x "$toolchain_dir/bin/rustc" ] ||
    die "no Rust toolchain $TOOLCHAIN in $rustup_home (rustup toolchain list; set RUSTUP_HOME)"
  "$toolchain_dir/bin/rustc" --version | grep -q "^rustc $RUST_VERSION " ||
    die "$toolchain_dir/bin/rustc is not Rust $RUST_VERSION"
  [ -x "$cargo_home/bin/rustup" ] || die "no rustup in $cargo_home/bin (set CARGO_HOME)"
  # What the official image (buildpack-deps) gives a build beyond minbase, as far as Rust builds need it;
  # scripts/setup.sh (PARLANCE_SETUP=build) installs the rest.
  packages=ca-certificates,curl,git,gcc,g++,libc6-dev,make,patch,xz-utils,procps,file
  mmdebstrap "${common[@]}" --include="$packages" \
    --customize-hook='chroot "$1" update-ca-certificates --fresh >/dev/null' \
    --customize-hook="$(printf '%q' "$self") __install-rust \"\$1\"" \
    "$SUITE" "$work/rust.tar" "${sources[@]}"
  import "$work/rust.tar" "$RUST_IMAGE" \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    --change "ENV RUST_VERSION=$RUST_VERSION" \
    --change "ENV PATH=/usr/local/cargo/bin:$PATH_IN_IMAGE"
fi

step "Checking the images"
check() {
  local image="$1"
  shift
  if ! "$engine" run --rm "$image" "$@"; then
    die "$image was made, but $engine could not run it (see the podman settings at the top of $self)"
  fi
}
[ "$only" = rust ] || check "$DEBIAN_IMAGE" sh -c '. /etc/os-release && echo "$PRETTY_NAME"'
[ "$only" = debian ] || check "$RUST_IMAGE" sh -c 'rustc --version && cargo --version && rustup target list --installed'
for image in "$DEBIAN_IMAGE" "$RUST_IMAGE"; do
  "$engine" images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' "$image"
done
