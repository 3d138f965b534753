#!/usr/bin/env bash
# Checks that the README's two commands work on a fresh machine of this project's kind: builds a Debian root
# file system like the machine image, clones the repository into it and, as root with an empty HOME, runs
# scripts/setup.sh, then scripts/run.sh until the server answers /health, then `CI=true scripts/test.sh`.
# Prints each step's wall time at the end; full logs stay in the work directory.
#
#   scripts/clean-machine.sh [--commit REV | --worktree] [--only-setup | --ci] [--keep] [--workdir DIR]
#                            [--packages image|minimal] [--image-list FILE] [--port N] [--health-timeout MIN]
#
#   --commit REV      what to clone (default HEAD of this checkout; a fresh clone, never the work tree)
#   --worktree        HEAD plus this work tree's uncommitted changes and untracked files (to check before a commit)
#   --only-setup      stop after scripts/setup.sh: a quick check of the install steps
#   --ci              setup.sh, then `CI=true scripts/test.sh` with nothing built before it: a cold CI run's time
#   --keep            keep the root file system (and the toolchain overlays) for a look inside afterwards
#   --workdir DIR     logs and the root file system go to DIR/<date-time>/ (default /var/tmp/parlance-clean-machine)
#   --packages image  the machine image's Debian packages (default when the image's list is found), or `minimal`:
#                     only git, ca-certificates, python3, gcc, g++, make, curl and Node.js
#   --image-list FILE the image's package list, one name a line (default ../shared/tools/image-debian-packages.txt
#                     beside this checkout)
#   --port N          where the server listens in the guest (default: a free port from 18080 on; the guest shares
#                     this machine's network, so 8080 may be taken by a server of the host)
#   --health-timeout MIN  how long run.sh may take, from the start of the build to /health answering (default 150)
#
# What stands for "what the machine image ships" is taken from this host, read-only:
#   - Debian packages: the image's list, installed fresh from this host's apt sources (same mirror, suites and
#     components), so versions are today's point releases rather than the image's. Names the sources do not
#     serve (vendor repositories the image was built with) are left out and listed in the log.
#   - Node.js: the image has NodeSource's nodejs, with npm upgraded in place to 11; that repository is not
#     reachable from here, so the host's installed package is repacked with dpkg-deb (its files, plus whatever
#     npm's upgrade left in /usr/lib/node_modules) and installed in the guest with apt. Debian's own nodejs is
#     only used when the host's version is one the sources serve.
#   - The Rust toolchain: $RUSTUP_HOME under an overlay (writes land in the work directory; the host's copy is
#     never modified) with the wasm32-unknown-unknown target removed in the guest's view, since the image does
#     not have it and setup.sh's `rustup target add` must really run. From $CARGO_HOME only rustup and its
#     proxies are copied: no cargo-installed tools, no registry cache.
#   - pyenv's Python, when `python3` resolves there (it does on the image), under an overlay too.
#   - The CA certificates the machine adds (/usr/local/share/ca-certificates: the registries are reached through
#     a TLS-inspecting egress), pip's and npm's config files, and the environment variables that point tools at
#     them (an allowlist below).
#   Not taken: /usr/local (the image's second git, cargo-nextest, a docker client: nothing the project uses) and
#   every cache of the host (~/.cache/parlance, the cargo registry, models).
# The toolchains are mounted at the same paths as on the host: pyenv's shims and rustup's toolchain links hold
# absolute paths. Each guest step runs in its own mount and pid namespace (unshare), so no mount outlives it
# and nothing started inside (the server, a stray daemon) survives the step, even when this script is killed.
set -euo pipefail

die() { printf 'clean-machine: %s\n' "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
commit_rev=HEAD
worktree=false
only_setup=false
ci_only=false
keep=false
workdir=/var/tmp/parlance-clean-machine
packages=""
image_list="$(dirname "$repo")/shared/tools/image-debian-packages.txt"
port=""
health_timeout_min=150

while (($#)); do
  case $1 in
    --commit) commit_rev=${2:?--commit needs a revision}; shift 2 ;;
    --worktree) worktree=true; shift ;;
    --only-setup) only_setup=true; shift ;;
    --ci) ci_only=true; shift ;;
    --keep) keep=true; shift ;;
    --workdir) workdir=${2:?--workdir needs a directory}; shift 2 ;;
    --packages) packages=${2:?--packages needs image or minimal}; shift 2 ;;
    --image-list) image_list=${2:?--image-list needs a file}; shift 2 ;;
    --port) port=${2:?--port needs a number}; shift 2 ;;
    --health-timeout) health_timeout_min=${2:?--health-timeout needs minutes}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "needs root (chroot, mounts, namespaces)"
$worktree && [ "$commit_rev" != HEAD ] && die "--worktree applies to HEAD; it does not go with --commit"
if [ -z "$packages" ]; then
  if [ -f "$image_list" ]; then packages=image; else
    printf 'clean-machine: no image package list at %s; using --packages minimal\n' "$image_list"
    packages=minimal
  fi
fi
case $packages in image) [ -f "$image_list" ] || die "no image package list: $image_list" ;; minimal) ;;
  *) die "--packages is image or minimal" ;; esac
commit=$(git -C "$repo" rev-parse --verify "$commit_rev^{commit}") || die "no such commit: $commit_rev"

# The image's toolchain locations, as rustup and pyenv resolve them here.
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
[ -x "$cargo_home/bin/rustup" ] && [ -d "$rustup_home/toolchains" ] || die "no rustup toolchain in $rustup_home"
pyenv_root=""
python3_path=$(command -v python3 || true)
candidate_pyenv=${PYENV_ROOT:-$HOME/.pyenv}
if [ -n "$python3_path" ] && [ -d "$candidate_pyenv" ] && [[ $python3_path == "$candidate_pyenv"/* ]]; then
  pyenv_root=$candidate_pyenv
fi

run_dir="$workdir/$(date +%Y%m%d-%H%M%S)"
root="$run_dir/rootfs"
logs="$run_dir/logs"
marks="$run_dir/marks.tsv"
mkdir -p "$logs" "$run_dir/overlays"
ln -sfn "$run_dir" "$workdir/latest"
: >"$marks"

# ---------------------------------------------------------------------------------------------------------
# Steps: each runs as a process group of its own (so a kill reaches all of it), its output timestamped into a log. Lines
# starting with "==> " (the project scripts' step headings) are recorded, to split the step's time into parts.
step_ids=() step_titles=() step_secs=() step_status=()
step_pid="" step_pgid="" step_now=()
failed=""

stamp() { # stamp MARKS STEP: copies stdin to stdout with a time on each line, recording "==> " headings
  local line
  while IFS= read -r line || [ -n "$line" ]; do
    printf '[%(%H:%M:%S)T] %s\n' -1 "$line"
    if [[ $line == '==> '* ]]; then printf '%(%s)T\t%s\t%s\n' -1 "$2" "${line#==> }" >>"$1"; fi
  done
}

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

run_step() { # run_step ID TITLE COMMAND...: COMMAND may be a function of this script
  local id=$1 title=$2 start now next rc log rc_file
  shift 2
  log="$logs/$(printf '%02d' $((${#step_ids[@]} + 1)))-$id.log"
  rc_file="$run_dir/.rc-$id"
  printf '\n==> %s\n    log: %s\n' "$title" "$log"
  printf -v start '%(%s)T' -1
  printf '%s\t%s\t%s\n' "$start" "$id" "(start)" >>"$marks"
  # The subshell keeps set -e (a failing command ends the step) and writes its status on the way out.
  rm -f "$rc_file"
  # Job control only for this launch: the step gets a process group of its own, which on_exit can end as a
  # whole, while this script stays in the terminal's foreground group and so still gets Ctrl-C itself.
  set -m
  ( trap 'echo $? >"$rc_file"' EXIT; "$@" ) </dev/null 2>&1 | stamp "$marks" "$id" >"$log" &
  step_pid=$! step_now=("$id" "$title" "$start")
  set +m
  # With job control the pipeline's group is led by its first process, not by $! (the last one).
  step_pgid=$(ps -o pgid= -p "$step_pid" | tr -d ' ' || true)
  step_pgid=${step_pgid:-$step_pid}
  next=$((start + 60))
  while kill -0 "$step_pid" 2>/dev/null; do
    sleep 1
    printf -v now '%(%s)T' -1
    if ((now >= next)); then
      # A heartbeat, so a long compile does not look like a hang.
      printf '    ... %s: %.110s\n' "$(fmt_secs $((now - start)))" "$(tail -n 1 "$log" 2>/dev/null | cut -c 12-)"
      next=$((next + 60))
    fi
  done
  wait "$step_pid" || true
  step_pid=""
  rc=$(cat "$rc_file" 2>/dev/null || echo 255)
  printf -v now '%(%s)T' -1
  step_ids+=("$id") step_titles+=("$title") step_secs+=($((now - start)))
  if ((rc != 0)); then
    step_status+=("FAILED (exit $rc)")
    failed=$title
    printf '    FAILED after %s (exit %d). Last lines of %s:\n' "$(fmt_secs $((now - start)))" "$rc" "$log"
    tail -n 40 "$log" | sed 's/^/    | /'
    exit 1
  fi
  step_status+=(ok)
  printf '    done in %s\n' "$(fmt_secs $((now - start)))"
}

summary() {
  local i j n t1 t2 id text start end
  printf '\n==== clean-machine summary (%s%s, packages: %s) ====\n' "${commit:0:12}" \
    "$($worktree && echo ' + work tree changes')" "$packages"
  for i in "${!step_ids[@]}"; do
    printf '  %-58s %8s  %s\n' "${step_titles[$i]}" "$(fmt_secs "${step_secs[$i]}")" "${step_status[$i]}"
    id=${step_ids[$i]}
    # The step's parts: from each "==> " heading to the next one, the last to the step's end.
    mapfile -t rows < <(awk -F'\t' -v id="$id" '$2 == id' "$marks")
    start=${rows[0]%%$'\t'*}
    end=$((start + step_secs[i]))
    n=${#rows[@]}
    for ((j = 1; j < n; j++)); do
      t1=${rows[$j]%%$'\t'*}
      text=${rows[$j]##*$'\t'}
      if ((j + 1 < n)); then t2=${rows[$((j + 1))]%%$'\t'*}; else t2=$end; fi
      printf '      %-56.56s %8s\n' "$text" "$(fmt_secs $((t2 - t1)))"
    done
  done
  [ -n "$failed" ] && printf '  FAILED at: %s\n' "$failed"
  printf '  logs: %s\n' "$logs"
  return 0
}

mounts_under() { findmnt -rn -o TARGET | awk -v r="$1" 'index($0, r "/") == 1 || $0 == r'; }

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$step_pid" ] && kill -0 "$step_pid" 2>/dev/null; then
    printf '\nclean-machine: stopping the running step\n' >&2
    kill -TERM -- "-$step_pgid" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$step_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$step_pgid" 2>/dev/null || true
    { wait "$step_pid"; } 2>/dev/null || true
    step_ids+=("${step_now[0]}") step_titles+=("${step_now[1]}") step_status+=(interrupted)
    step_secs+=($(($(date +%s) - step_now[2])))
    [ -n "$failed" ] || failed="${step_now[1]} (interrupted)"
  fi
  ((${#step_ids[@]})) && summary | tee "$run_dir/summary.txt"
  if [ -d "$root" ] && ! $keep; then
    # Every guest mount lives in a namespace of its own, so none should be here; if one is (a bug), deleting
    # through it could reach the host's toolchains: leave the tree alone and say so.
    if [ -n "$(mounts_under "$root")" ]; then
      printf 'clean-machine: mounts remain under %s; not deleting it:\n%s\n' "$root" "$(mounts_under "$root")" >&2
    else
      printf 'clean-machine: removing %s\n' "$root"
      rm -rf --one-file-system "$root" "$run_dir/overlays"
      rm -rf "$run_dir/extra" "$run_dir/nodejs-host.deb" "$run_dir/nodejs.files"
    fi
  elif [ -d "$root" ]; then
    printf 'clean-machine: kept %s and the toolchain overlays in %s (mounted only while a step runs);\n' \
      "$root" "$run_dir/overlays"
    printf '  remove with: rm -rf --one-file-system %s %s\n' "$root" "$run_dir/overlays"
  fi
  # Installed here only for this check: left on the host, it is a package the machine image lacks, which
  # .ci/run (through fresh-machine-diff) then refuses.
  if [ -f "$run_dir/installed-mmdebstrap" ]; then
    printf 'clean-machine: removing mmdebstrap again from the host\n'
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq mmdebstrap >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq >/dev/null 2>&1 || true
  fi
  ((rc == 0)) || printf 'clean-machine: FAILED%s\n' "${failed:+ at: $failed}" >&2
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------------
# The guest. Mounts are made inside a new mount and pid namespace and die with it; --kill-child ends the
# namespace (and so everything in it) when unshare itself is killed.
guest_enter() { # guest_enter COMMAND...: runs COMMAND in the root file system, with the guest's environment
  set -euo pipefail
  local root=$CM_ROOT lower upper work src dst
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/dev/shm"
  while IFS='|' read -r lower upper work; do
    [ -n "$lower" ] || continue
    mkdir -p "$root$lower"
    # redirect_dir: rustup renames whole folders of a toolchain (moving a component out of the way before it
    # deletes it), which an overlay refuses for folders of the lower layer (EXDEV) without it.
    mount -t overlay overlay -o "redirect_dir=on,lowerdir=$lower,upperdir=$upper,workdir=$work" "$root$lower"
  done <<<"$CM_OVERLAYS"
  while IFS='|' read -r src dst; do
    [ -n "$src" ] || continue
    mkdir -p "$root$dst"
    mount --bind "$src" "$root$dst"
    mount -o remount,bind,ro "$root$dst"
  done <<<"$CM_RO_BINDS"
  local env_vars
  mapfile -t env_vars <"$CM_ENV_FILE"
  exec chroot "$root" /usr/bin/env -i "${env_vars[@]}" "$@"
}
export -f guest_enter

overlays="" # lines "dir|upper|work": dir is mounted at the same path in the guest, over the host's copy
add_overlay() { # add_overlay NAME DIR
  local o="$run_dir/overlays/$1"
  mkdir -p "$o/upper" "$o/work"
  overlays+="$2|$o/upper|$o/work"$'\n'
}
add_overlay rustup "$rustup_home"
[ -z "$pyenv_root" ] || add_overlay pyenv "$pyenv_root"
src_in_guest=/mnt/parlance-src
ro_binds="$repo|$src_in_guest"$'\n'

guest() { # guest COMMAND...
  CM_ROOT=$root CM_OVERLAYS=$overlays CM_RO_BINDS=$ro_binds CM_ENV_FILE="$run_dir/guest.env" \
    unshare --mount --pid --fork --kill-child --propagation private bash -c 'guest_enter "$@"' _ "$@"
}

# The guest's environment: the image's PATH and the machine's variables for certificates, pip, rustup and
# friends; nothing of this session (no CARGO_TARGET_DIR, no PARLANCE_*), and HOME is the guest's own /root.
guest_path="$cargo_home/bin"
[ -z "$pyenv_root" ] || guest_path+=":$pyenv_root/plugins/pyenv-virtualenv/shims:$pyenv_root/shims:$pyenv_root/bin"
guest_path+=":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
pass_re='^(LANG|LC_[A-Z]+|TERM|DEBIAN_FRONTEND|PIP_[A-Z_]+|PYTHON[A-Z_]*|RUSTUP_AUTO_INSTALL|RUST_BACKTRACE|OPENBLAS_[A-Z0-9_]+|SSL_CERT_(FILE|DIR)|[A-Z0-9_]*CA_(BUNDLE|CERTS|CERTS_FILE|INFO)|NODE_EXTRA_CA_CERTS|GIT_SSL_CAINFO|GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)$'
{
  printf '%s\n' HOME=/root USER=root LOGNAME=root SHELL=/bin/bash "PATH=$guest_path"
  [ -z "${RUSTUP_HOME:-}" ] || printf 'RUSTUP_HOME=%s\n' "$RUSTUP_HOME"
  [ -z "${CARGO_HOME:-}" ] || printf 'CARGO_HOME=%s\n' "$CARGO_HOME"
  [ -z "$pyenv_root" ] || printf 'PYENV_ROOT=%s\n' "$pyenv_root"
  for name in $(compgen -e); do
    if [[ $name =~ $pass_re ]]; then printf '%s=%s\n' "$name" "${!name}"; fi
  done
} >"$run_dir/guest.env"

printf 'clean-machine: %s at %s%s into %s\n' "$repo" "${commit:0:12}" "$($worktree && echo ' + work tree changes')" \
  "$run_dir"
printf '  packages: %s; rustup: %s; pyenv: %s\n' "$packages" "$rustup_home" "${pyenv_root:-none (python3 is $python3_path)}"
free_gb=$(($(df -Pk "$workdir" | awk 'NR==2{print $4}') / 1024 / 1024))
((free_gb >= 40)) || printf '  warning: only %d GB free in %s (a full run needs about 30 GB)\n' "$free_gb" "$workdir"

# ---------------------------------------------------------------------------------------------------------
# Host side: what the rootfs is made from.
prepare_host() {
  if ! command -v mmdebstrap >/dev/null; then
    echo "==> Installing mmdebstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap
    # A file, not a variable: this runs as a step, in a subshell.
    touch "$run_dir/installed-mmdebstrap"
  fi
  # Package names are checked against the host's lists, which may never have been fetched on a new machine.
  apt-cache madison base-files 2>/dev/null | grep -q . || apt-get update -qq

  local wanted=()
  if [ "$packages" = image ]; then
    mapfile -t wanted < <(grep -v -E '^\s*(#|$)' "$image_list" | sed 's/[[:space:]].*//')
  else
    wanted=(git ca-certificates python3 gcc g++ make curl nodejs npm)
  fi
  # Node.js as the image has it: repacked from the host when its version is not one the sources serve.
  local node_version=""
  node_version=$(dpkg-query -W -f '${db:Status-Abbrev} ${Version}' nodejs 2>/dev/null | awk '$1=="ii"{print $2}' || true)
  repack_node=false
  if [ -n "$node_version" ] && ! apt-cache madison nodejs | awk -F'|' '{gsub(/ /,"",$2); print $2}' \
    | grep -qxF "$node_version"; then
    repack_node=true
  fi
  local available
  available=$(apt-cache madison "${wanted[@]}" 2>/dev/null | awk '{print $1}' | sort -u || true)
  include=() skipped=()
  for p in "${wanted[@]}"; do
    if $repack_node && { [ "$p" = nodejs ] || [ "$p" = npm ]; }; then continue; fi
    if grep -qxF "$p" <<<"$available"; then include+=("$p"); else skipped+=("$p"); fi
  done
  echo "==> Package selection"
  printf 'installing %d packages by name\n' "${#include[@]}"
  printf 'not served by the apt sources, left out: %s\n' "${skipped[*]:-none}"
  printf '%s\n' "${include[@]}" >"$run_dir/include.txt"

  if $repack_node; then
    echo "==> Repacking the host's nodejs $node_version"
    local tree="$run_dir/nodejs-deb" listed="$run_dir/nodejs.files"
    rm -rf "$tree"
    mkdir -p "$tree/DEBIAN"
    # dpkg's file list, plus npm's own folder as it is now: npm upgraded itself in place on the image.
    { dpkg-query -L nodejs | while IFS= read -r f; do
        [ "$f" != /. ] || continue
        if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "${f#/}"; fi
      done
      [ -d /usr/lib/node_modules ] && find /usr/lib/node_modules | sed 's|^/||'
    } | sort -u >"$listed"
    tar -C / --no-recursion --verbatim-files-from -T "$listed" -cf - | tar -C "$tree" -xf -
    dpkg-query -s nodejs | awk '
      /^[A-Za-z-]+:/ { field = $1; skip = (field == "Status:" || field == "Conffiles:" || field == "Config-Version:") }
      !skip' >"$tree/DEBIAN/control"
    dpkg-query -W -f '${Conffiles}\n' nodejs | awk 'NF && $NF != "obsolete" {print $1}' >"$tree/DEBIAN/conffiles"
    [ -s "$tree/DEBIAN/conffiles" ] || rm "$tree/DEBIAN/conffiles"
    for s in preinst postinst prerm postrm; do
      [ ! -f "/var/lib/dpkg/info/nodejs.$s" ] || install -m 0755 "/var/lib/dpkg/info/nodejs.$s" "$tree/DEBIAN/$s"
    done
    # No compression: the file only travels to the rootfs next door.
    dpkg-deb --root-owner-group -Znone --build "$tree" "$run_dir/nodejs-host.deb"
    rm -rf "$tree"
  fi

  # The CA certificates the machine adds, and pip's and npm's configuration, copied into the rootfs later.
  echo "==> Machine files for the guest"
  extra="$run_dir/extra"
  mkdir -p "$extra"
  local f
  for f in /usr/local/share/ca-certificates/*.crt /etc/pip.conf /etc/npmrc /usr/etc/npmrc; do
    [ -f "$f" ] || continue
    mkdir -p "$extra$(dirname "$f")"
    cp -p "$f" "$extra$f"
    echo "$f"
  done
  for f in .npmrc .config/pip/pip.conf; do # the guest's HOME is /root, whatever this host's is
    [ -f "$HOME/$f" ] || continue
    mkdir -p "$extra/root/$(dirname "$f")"
    cp -p "$HOME/$f" "$extra/root/$f"
    echo "$HOME/$f"
  done
  # rustup and its proxies (cargo, rustc, ...) only: anything cargo-installed here is this host's, not the image's.
  mkdir -p "$extra$cargo_home/bin"
  cp -p "$cargo_home/bin/rustup" "$extra$cargo_home/bin/"
  for f in "$cargo_home"/bin/*; do
    [ -L "$f" ] && [ "$(readlink "$f")" = rustup ] && cp -P "$f" "$extra$cargo_home/bin/"
  done
  [ ! -f "$cargo_home/env" ] || cp -p "$cargo_home/env" "$extra$cargo_home/env"
  ls "$extra$cargo_home/bin"

  if $worktree; then
    echo "==> This work tree's changes"
    git -C "$repo" diff --binary HEAD >"$run_dir/worktree.patch"
    git -C "$repo" ls-files --others --exclude-standard -z >"$run_dir/untracked.list"
    tar -C "$repo" --null -T "$run_dir/untracked.list" -cf "$run_dir/untracked.tar"
    git -C "$repo" status --short
  fi
}
run_step host "Host: package selection, Node.js repack, machine files" prepare_host
mapfile -t include <"$run_dir/include.txt"
repack_node=false
[ ! -f "$run_dir/nodejs-host.deb" ] || repack_node=true

# ---------------------------------------------------------------------------------------------------------
# The root file system: Debian's essential set and apt, plus the image's packages, from the host's own sources.
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$suite" ] || die "no VERSION_CODENAME in /etc/os-release"
sources=()
if [ -f /etc/apt/sources.list ] && grep -q -E '^\s*deb' /etc/apt/sources.list; then sources+=(/etc/apt/sources.list); fi
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && sources+=("$f"); done
((${#sources[@]})) || die "no apt sources on this host"
hooks=()
if $repack_node; then
  hooks+=(--customize-hook="copy-in $run_dir/nodejs-host.deb /tmp"
    --customize-hook='chroot "$1" apt-get install -y -q --no-install-recommends /tmp/nodejs-host.deb'
    --customize-hook='rm -f "$1/tmp/nodejs-host.deb"')
fi
# Unshare mode as root: mmdebstrap's own mounts live in a namespace of their own and cannot outlive it.
run_step rootfs "Root file system: mmdebstrap $suite, ${#include[@]} packages" \
  mmdebstrap --verbose --mode=unshare --variant=apt --format=directory \
  --include="$(IFS=,; echo "${include[*]}")" "${hooks[@]}" "$suite" "$root" "${sources[@]}"

prepare_guest() {
  # --no-overwrite-dir: the rootfs keeps its own folders' modes (/root stays 700).
  tar -C "$run_dir/extra" -cf - . | tar -C "$root" -xf - --no-overwrite-dir
  # Name resolution as on the host (a container runtime would provide both files).
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  cp -L /etc/hosts "$root/etc/hosts"
  # PIP_FIND_LINKS names a folder on the machine (empty there); pip warns when it is missing.
  [ -z "${PIP_FIND_LINKS:-}" ] || [[ $PIP_FIND_LINKS == *://* ]] || mkdir -p "$root$PIP_FIND_LINKS"
  if $worktree; then cp "$run_dir/worktree.patch" "$run_dir/untracked.tar" "$root/tmp/"; fi
  guest bash -euo pipefail -c '
    echo "==> CA certificates"
    update-ca-certificates
    echo "==> The toolchain as the image has it: no wasm32-unknown-unknown target"
    for tc in $(rustup toolchain list | awk "{print \$1}"); do
      if rustup target list --installed --toolchain "$tc" 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        rustup target remove --toolchain "$tc" wasm32-unknown-unknown
      fi
    done
    rustup show
    echo "==> Versions"
    set +e
    for c in git python3 pip node npm cargo rustc gcc; do printf "%-8s %s\n" "$c" "$(command -v "$c") $("$c" --version 2>&1 | head -n 1)"; done
  '
}
run_step guest "Guest: certificates, toolchain view" prepare_guest

# A fresh clone from the host's repository (mounted read-only), not a copy of the work tree.
clone_script='
  echo "==> git clone"
  git -c safe.directory="*" clone --no-checkout "file://$1" /root/parlance
  cd /root/parlance
  git checkout --quiet --detach "$2" 2>/dev/null || { git fetch --quiet origin "$2" && git checkout --quiet --detach "$2"; }
  git log -1 --format="%H %s"
  if [ -f /tmp/worktree.patch ]; then
    echo "==> Applying the work tree changes"
    [ ! -s /tmp/worktree.patch ] || git apply --whitespace=nowarn /tmp/worktree.patch
    tar -xf /tmp/untracked.tar
    rm -f /tmp/worktree.patch /tmp/untracked.tar
    git status --short
  fi
'
run_step clone "Clone ${commit:0:12}$($worktree && echo ' + work tree changes')" \
  guest bash -euo pipefail -c "$clone_script" _ "$src_in_guest" "$commit"

# setup.sh on its own first: run.sh begins with it, so this costs nothing, gives the install steps their own
# times, and the run below then also shows that a second setup.sh does nothing.
run_step setup "scripts/setup.sh" \
  guest bash -euo pipefail -c 'cd /root/parlance && bash scripts/setup.sh'

if $only_setup; then
  printf '\nclean-machine: --only-setup: stopping after scripts/setup.sh\n'
  exit 0
fi

if [ -z "$port" ]; then
  # The guest shares the host's network: take a port nothing listens on here.
  port=18080
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
fi

# run.sh ends by exec'ing the server: start it in the background, wait for /health, then stop it.
run_script='
  cd /root/parlance
  port=$1
  deadline=$((SECONDS + $2 * 60))
  ./scripts/run.sh --bind "127.0.0.1:$port" &
  server=$!
  until curl -fsS -o /tmp/health.json "http://127.0.0.1:$port/health" 2>/dev/null; do
    if ! kill -0 "$server" 2>/dev/null; then
      rc=0; wait "$server" || rc=$?
      echo "clean-machine: scripts/run.sh exited (status $rc) before /health answered" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "clean-machine: no answer from /health within $2 minutes" >&2
      exit 1
    fi
    sleep 5
  done
  echo "==> [clean-machine] /health answered; stopping the server"
  cat /tmp/health.json; echo
  kill -TERM "$server" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$server" 2>/dev/null || break; sleep 1; done
  kill -KILL "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
'
if ! $ci_only; then
  run_step run "scripts/run.sh --bind 127.0.0.1:$port until /health answers" \
    guest bash -euo pipefail -c "$run_script" _ "$port" "$health_timeout_min"
fi

run_step test "CI=true scripts/test.sh" \
  guest bash -euo pipefail -c 'cd /root/parlance && CI=true ./scripts/test.sh'

if $ci_only; then
  printf '\nclean-machine: a cold CI run passes on a fresh machine (%s)\n' "${commit:0:12}"
else
  printf '\nclean-machine: the README'\''s commands work on a fresh machine (%s)\n' "${commit:0:12}"
fi
