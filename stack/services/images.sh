# shellcheck shell=bash
# Container images of the functions (`make images` = `stack/boxo images`) and the container engine
# that builds and runs them (`make up CONTAINERS=1`, tests/containers). Not a service of its own:
# no images_install, so `stack/boxo up` starts the engine only when the functions run as containers.
#
# The build needs no network: the Python wheels of requirements/runtime.lock are downloaded on the
# host (hash-checked, pip's cache in the project cache) into build/images/wheels/, which the
# Containerfile installs with --no-index. The base image:
#   local (default)  boxoffice/python-base:bookworm-<recipe hash>, Debian bookworm's python3 (3.11)
#                    made by mmdebstrap from Debian's packages (no registry), cached as a tarball in
#                    $BX_CACHE/images and `docker import`ed; its package list is written beside it.
#   production       BOXOFFICE_IMAGE_BASE=production: the Containerfile's pinned python:3.11-slim
#                    digest (needs a registry; what CI elsewhere and the release use).
# Names: <image.repository>/<function>:<image.tag> from helm/boxoffice/values.yaml, the names the
# chart deploys and deploy/kind-load-images.sh loads.
#
# The engine: any running Docker engine (`docker info` answers). Otherwise, as root, Debian's
# docker.io is installed and `dockerd` started by hand (no systemd here) with its data root in
# $BX_CACHE/docker, so that image layers outlive a clone: CI builds once per run and reuses layers.
BX_IMAGES_CACHE="$BX_CACHE/images"
BX_IMAGES_CONTEXT_WHEELS="$BX_ROOT/build/images/wheels"
BX_DOCKERD_ROOT="${BOXOFFICE_DOCKERD_DATA_ROOT:-$BX_CACHE/docker}"
BX_CONTAINER_PREFIX=boxoffice-
# Debian bookworm, from the mirror this machine's apt uses; change the recipe -> a new base tag.
BX_BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,passwd
BX_BASE_MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)

# bx_docker ARGS...: the Docker CLI. BuildKit is needed (COPY --chmod); a CLI without the buildx
# plugin (Docker 23+) only has the legacy builder, Debian's 20.10 CLI has BuildKit built in.
bx_docker() {
  if [[ -z "${BX_DOCKER_CLI:-}" ]]; then
    if [[ -n "${BOXOFFICE_DOCKER:-}" ]]; then
      BX_DOCKER_CLI=$BOXOFFICE_DOCKER
    elif command -v docker >/dev/null && docker buildx version >/dev/null 2>&1; then
      BX_DOCKER_CLI=$(command -v docker)
    elif [[ -x /usr/bin/docker ]]; then
      BX_DOCKER_CLI=/usr/bin/docker
    else
      BX_DOCKER_CLI=docker
    fi
  fi
  DOCKER_BUILDKIT=1 "$BX_DOCKER_CLI" "$@"
}

engine_healthy() { bx_docker info >/dev/null 2>&1; }

# engine_ensure: a running engine, or a clear failure saying why there is none.
engine_ensure() {
  engine_healthy && return 0
  [[ $EUID -eq 0 ]] || bx_die "no container engine answers (docker info) and starting one needs root: start Docker, or run as root to let the stack start Debian's dockerd"
  if ! command -v dockerd >/dev/null; then
    command -v apt-get >/dev/null || bx_die "no container engine and no apt-get to install Debian's docker.io: install Docker"
    bx_apt_install docker.io iptables
  fi
  [[ -x /usr/bin/docker ]] || bx_apt_install docker.io
  mkdir -p "$BX_DOCKERD_ROOT" "$BX_LOGS" "$BX_RUN"
  bx_log "starting dockerd (data root $BX_DOCKERD_ROOT, log $(bx_log_file dockerd))"
  bx_start_bg dockerd dockerd --data-root "$BX_DOCKERD_ROOT" --host unix:///var/run/docker.sock
  local i
  for ((i = 0; i < 120; i++)); do
    engine_healthy && return 0
    bx_pid_alive dockerd || break
    sleep 0.5
  done
  tail -n 20 "$(bx_log_file dockerd)" >&2 || true
  bx_die "the container engine did not start; see $(bx_log_file dockerd)"
}

# image_setting KEY: image.<KEY> of the chart's values.yaml (repository, tag).
image_setting() {
  sed -n '/^image:/,/^[^ #]/s/^  '"$1"': *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' \
    "$BX_ROOT/helm/boxoffice/values.yaml" | head -n1
}
image_name() { echo "$(image_setting repository)/$1:$(image_setting tag)"; }
images_functions() {
  local d
  for d in "$BX_ROOT"/functions/*/main.py; do basename "$(dirname "$d")"; done
}

# images_base: prints the local base image's name, making it first if the engine lacks it.
images_base() {
  local key tag tar
  key=$(printf '%s\n' "$BX_BASE_PACKAGES" "${BX_BASE_MIRRORS[@]}" "$(declare -f _images_mmdebstrap)" |
    sha256sum | cut -c1-12)
  tag="boxoffice/python-base:bookworm-$key"
  if bx_docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; return 0; fi
  tar="$BX_IMAGES_CACHE/python-base-bookworm-$key.tar"
  if [[ ! -s "$tar" ]]; then
    command -v mmdebstrap >/dev/null || bx_apt_install mmdebstrap
    bx_log "making the base image with mmdebstrap (Debian bookworm, $BX_BASE_PACKAGES)"
    mkdir -p "$BX_IMAGES_CACHE"
    _images_mmdebstrap "$tar.part" >"$BX_IMAGES_CACHE/mmdebstrap.log" 2>&1 ||
      { tail -n 20 "$BX_IMAGES_CACHE/mmdebstrap.log" >&2; bx_die "mmdebstrap failed; see $BX_IMAGES_CACHE/mmdebstrap.log"; }
    tar -xOf "$tar.part" ./var/lib/dpkg/status | awk '/^Package:/{p=$2} /^Version:/{print p, $2}' \
      >"$tar.packages.txt"
    mv "$tar.part" "$tar"
    find "$BX_IMAGES_CACHE" -maxdepth 1 -name 'python-base-bookworm-*' ! -name "$(basename "$tar")*" -delete
  fi
  bx_log "importing $tag from $tar"
  bx_docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tar" "$tag" >/dev/null
  echo "$tag"
}

# The base's recipe: Debian's essential packages (no apt: nothing is installed at run time) with
# merged /usr (the hook, not the usrmerge package, which pulls in perl), no recommends, no
# manuals, docs or translations, no iconv modules (Python and libpq do not use glibc's iconv), and
# no setuid/setgid programs (su, mount...: nothing in a function's container changes user).
_images_mmdebstrap() {
  mmdebstrap --variant=essential --format=tar --include="$BX_BASE_PACKAGES" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*' \
    --customize-hook='chroot "$1" find / -xdev -type f -perm /6000 -exec chmod ug-s {} +' \
    bookworm "$1" "${BX_BASE_MIRRORS[@]}"
}

# images_wheels: exactly the wheels of requirements/runtime.lock for CPython 3.11 on x86_64 Linux
# with bookworm's glibc (2.36: manylinux_2_36 and older),
# hash-checked, into the build context (from pip's cache in $BX_CACHE/pip after the first run).
images_wheels() {
  local lock="$BX_ROOT/requirements/runtime.lock" dest="$BX_IMAGES_CONTEXT_WHEELS"
  rm -rf "$dest"
  mkdir -p "$dest"
  PIP_CACHE_DIR="$BX_CACHE/pip" "$BX_VENV/bin/pip" download -q --disable-pip-version-check \
    --require-hashes --no-deps --only-binary=:all: --implementation cp --python-version 3.11 \
    $(for v in $(seq 36 -1 17); do printf -- '--platform manylinux_2_%s_x86_64 ' "$v"; done) \
    --platform manylinux2014_x86_64 --dest "$dest" -r "$lock" ||
    bx_die "downloading the wheels of $lock failed"
}

# images_build [FUNCTION...]: build the images (default: every function), sharing every layer but
# the function's own.
images_build() {
  local base fn fns=("$@") t0=$SECONDS
  ((${#fns[@]})) || mapfile -t fns < <(images_functions)
  engine_ensure
  case "${BOXOFFICE_IMAGE_BASE:-local}" in
    local) base=$(images_base) || exit 1 ;;
    production) base="" ;;
    *) bx_die "BOXOFFICE_IMAGE_BASE is local or production, not ${BOXOFFICE_IMAGE_BASE}" ;;
  esac
  images_wheels
  for fn in "${fns[@]}"; do
    [[ -f "$BX_ROOT/functions/$fn/main.py" ]] || bx_die "no function $fn in functions/"
    bx_log "building $(image_name "$fn")"
    bx_docker build -q -f "$BX_ROOT/Containerfile" ${base:+--build-arg "PYTHON_IMAGE=$base"} \
      --build-arg "FUNCTION=$fn" --label org.opencontainers.image.vendor=Boxoffice \
      --label "org.opencontainers.image.revision=$(git -C "$BX_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)" \
      -t "$(image_name "$fn")" "$BX_ROOT" >/dev/null || bx_die "building the $fn image failed"
  done
  # what earlier builds left: their images (untagged now) and older bases
  bx_docker image prune -f --filter "label=org.opencontainers.image.vendor=Boxoffice" >/dev/null
  [[ -z $base ]] || bx_docker images --format '{{.Repository}}:{{.Tag}}' boxoffice/python-base |
    grep -vxF "$base" | xargs -r "$BX_DOCKER_CLI" rmi >/dev/null 2>&1 || true
  bx_ok "images built in $((SECONDS - t0))s: $(for fn in "${fns[@]}"; do printf '%s ' "$(image_name "$fn")"; done)"
}
