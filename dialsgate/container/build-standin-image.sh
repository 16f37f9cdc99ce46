#!/usr/bin/env bash
# Provide the core of a serving image locally: a stand-in built from Debian 12 (bookworm) and
# PyPI with the image's core Python packages (core.txt of an image profile, under its
# image-packages.txt constraints). The gate (dialsgate.container.ensure_image) adds the image
# packages a model folder needs on top, and points the template's Image name at the result.
#
#   dialsgate/container/build-standin-image.sh [--image NAME] [--profile DIR] [--force] [--no-pull]
#
#   --image NAME  image name to provide (default: dialsgate-standin:<profile>-core)
#   --profile DIR image profile folder (default: dialsgate/environment/profiles/mlserver-1.5.0)
#   --force       rebuild the stand-in even if an up-to-date one exists (a foreign image of
#                 that name is still left alone)
#   --no-pull     do not try `<engine> pull` (also: DIALSGATE_NO_PULL=1)
#   --print-profile  print what is read of the profile and stop
#
# The engine's client: DIALSGATE_ENGINE (docker or podman; default docker when on PATH, else
# podman, as dialsgate.container.engine decides). The profile's profile.toml is read as TOML by
# `python -m dialsgate.environment.profiles` (DIALSGATE_PYTHON, default python3: 3.11+ or tomli).
#
# Decision order:
#   1. NAME exists locally with label org.dialsgate.pins-sha256=<sha256 of pins +
#      constraints>  -> up to date, nothing to do.
#   2. NAME exists without that label and without org.dialsgate.standin (e.g. the real image
#      pulled by a user) -> used as is.
#   3. `<engine> pull NAME` within PULL_TIMEOUT seconds (default 30) -> used.
#   4. Build the stand-in: mmdebstrap rootfs, host-built wheelhouse (cached under
#      ${DIALSGATE_CACHE_DIR:-~/.cache/dialsgate}/standin/wheelhouse/<hash>), venv at /opt/mlserver/.venv
#      installed offline inside chroot, user mlserver (uid 1000), `<engine> import` as NAME.
#
# Needs: a running engine (.ci/docker-engine.sh start); to build (step 4 only): root for
# mmdebstrap/chroot, this machine being the profile's `machine`, and a host Python of the image's
# minor version (the profile's `python`): it builds the wheelhouse and, since the stand-in's Debian
# may ship another, its installation prefix is copied into the image as /opt/python (override the
# interpreter with PYTHON=/path/to/pythonX.Y).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROFILE_DIR="$SCRIPT_DIR/../environment/profiles/mlserver-1.5.0"

LABEL_KEY="org.dialsgate.pins-sha256"
RECIPE_KEY="org.dialsgate.standin-recipe"
RECIPE_VERSION="3"           # bump when the build recipe below changes in a way images must follow
STANDIN_KEY="org.dialsgate.standin"
IMAGE_PYTHON_PREFIX="/opt/python"   # where the image's interpreter lives in the stand-in
VENV="/opt/mlserver/.venv"
WORKDIR_IN_IMAGE="/opt/mlserver"
PULL_TIMEOUT="${PULL_TIMEOUT:-30}"
PYTHON="${PYTHON:-}"
CACHE_DIR="${DIALSGATE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/dialsgate}/standin"
BUILD_PARENT="${DIALSGATE_BUILD_TMP:-/var/tmp}"

IMAGE=""
FORCE=0
PRINT_PROFILE=0
NO_PULL="${DIALSGATE_NO_PULL:-0}"

log() { printf '[standin-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[standin-image] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

usage() { sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case "$1" in
        --image) [[ $# -ge 2 ]] || die "--image needs a value"; IMAGE="$2"; shift 2 ;;
        --image=*) IMAGE="${1#--image=}"; shift ;;
        --profile) [[ $# -ge 2 ]] || die "--profile needs a value"; PROFILE_DIR="$2"; shift 2 ;;
        --force) FORCE=1; shift ;;
        --no-pull) NO_PULL=1; shift ;;
        --print-profile) PRINT_PROFILE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# The profile, read as TOML by dialsgate's own reader: one key=value line per value used here.
PROFILE_PYTHON="${DIALSGATE_PYTHON:-python3}"
profile_values="$(PYTHONPATH="$SCRIPT_DIR/../..${PYTHONPATH:+:$PYTHONPATH}" \
    "$PROFILE_PYTHON" -m dialsgate.environment.profiles "$PROFILE_DIR")" \
    || die "cannot read $PROFILE_DIR/profile.toml with $PROFILE_PYTHON (Python 3.11+, or tomli)"
PROFILE_NAME="" PROFILE_PY="" PINS="" CONSTRAINTS="" PROFILE_MACHINE="" SUITE=""
while IFS= read -r line; do
    value="${line#*=}"
    case "${line%%=*}" in
        name) PROFILE_NAME="$value" ;;
        python_minor) PROFILE_PY="$value" ;;
        core) PINS="$value" ;;
        packages) CONSTRAINTS="$value" ;;
        machine) PROFILE_MACHINE="$value" ;;
        standin_suite) SUITE="$value" ;;
    esac
done <<< "$profile_values"
[[ "$PROFILE_NAME" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "implausible profile name: '$PROFILE_NAME'"
[[ "$PROFILE_PY" =~ ^[0-9]+\.[0-9]+$ ]] || die "no python = \"X.Y.Z\" in $PROFILE_DIR/profile.toml"
[[ "$PROFILE_MACHINE" =~ ^[a-z0-9_]+$ ]] || die "implausible machine in the profile: '$PROFILE_MACHINE'"
[[ "$SUITE" =~ ^[a-z]+$ ]] || die "implausible Debian suite in the profile: '$SUITE'"
[[ -n "$IMAGE" ]] || IMAGE="dialsgate-standin:$PROFILE_NAME-core"
[[ "$IMAGE" =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] || die "implausible image name: '$IMAGE'"

[[ -f "$PINS" && -f "$CONSTRAINTS" ]] || die "missing $PINS or $CONSTRAINTS"
if [[ "$PRINT_PROFILE" == 1 ]]; then
    printf '%s\n' "name $PROFILE_NAME" "python $PROFILE_PY" "core $PINS" "packages $CONSTRAINTS" \
        "machine $PROFILE_MACHINE" "suite $SUITE" "image $IMAGE"
    exit 0
fi
PINS_SHA="$(cat "$PINS" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"

# The engine's client, chosen as dialsgate.container.engine chooses it.
ENGINE="${DIALSGATE_ENGINE:-}"
if [[ -z "$ENGINE" ]]; then
    ENGINE="$(command -v docker || command -v podman || true)"
    [[ -n "$ENGINE" ]] || die "no container engine client found (docker or podman on PATH)"
fi
command -v "$ENGINE" >/dev/null 2>&1 || die "the engine's client $ENGINE is not installed"
ENGINE_NAME="$(basename "$ENGINE")"
"$ENGINE" info >/dev/null 2>&1 || die "no $ENGINE_NAME engine answers; start one (e.g. .ci/docker-engine.sh start)"

# Print label value of an image, empty if the image has none; return 1 if the image is missing.
image_label() {
    local out
    out="$("$ENGINE" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null)" || return 1
    [[ "$out" == "<no value>" ]] && out=""
    printf '%s\n' "$out"
}

image_is_ours_current() {
    local sha recipe
    sha="$(image_label "$1" "$LABEL_KEY")" || return 1
    recipe="$(image_label "$1" "$RECIPE_KEY")" || return 1
    [[ "$sha" == "$PINS_SHA" && "$recipe" == "$RECIPE_VERSION" ]]
}

T_TOTAL="$(now)"
log "image: $IMAGE; pins sha256: $PINS_SHA"

# Serialise concurrent runs (two test sessions must not build twice into the same tag).
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/build.lock"
if ! flock -n 9; then
    log "another build holds $CACHE_DIR/build.lock: waiting for it"
    flock 9
fi

# 1./2. Present locally?
if existing_sha="$(image_label "$IMAGE" "$LABEL_KEY")"; then
    # A stand-in of ours carries STANDIN_KEY; one from an older recipe may lack the pins label.
    if [[ -z "$existing_sha" && -n "$(image_label "$IMAGE" "$STANDIN_KEY")" ]]; then existing_sha="(none)"; fi
    if [[ -n "$existing_sha" ]]; then
        if [[ "$FORCE" == 0 ]] && image_is_ours_current "$IMAGE"; then
            log "up to date: $IMAGE is the stand-in for these pins ($(since "$T_TOTAL") s)"
            exit 0
        fi
        if [[ "$FORCE" == 1 ]]; then
            log "--force: rebuilding the stand-in $IMAGE"
        else
            log "$IMAGE is a stand-in for other pins (label $existing_sha) or an older recipe: rebuilding"
        fi
        OLD_ID="$("$ENGINE" image inspect --format '{{.Id}}' "$IMAGE")"
    else
        log "$IMAGE exists locally and is not a stand-in (e.g. the real image): using it as is"
        exit 0
    fi
fi

# 3. Pullable?
if [[ "$NO_PULL" != 1 && -z "${existing_sha:-}" ]]; then
    log "trying $ENGINE_NAME pull $IMAGE (timeout ${PULL_TIMEOUT} s)"
    t="$(now)"
    if timeout --kill-after=5 "$PULL_TIMEOUT" "$ENGINE" pull -q "$IMAGE" >/dev/null 2>"$CACHE_DIR/pull.err"; then
        log "pulled $IMAGE in $(since "$t") s: using it"
        exit 0
    fi
    log "pull failed after $(since "$t") s ($(tail -n 1 "$CACHE_DIR/pull.err" | cut -c1-160)): building the stand-in"
fi

# 4. Build the stand-in.
[[ "$(id -u)" == 0 ]] || die "building the stand-in needs root (mmdebstrap, chroot)"
[[ "$(uname -m)" == "$PROFILE_MACHINE" ]] || die "the profile's image runs on $PROFILE_MACHINE, this machine is $(uname -m)"
# A host interpreter of the image's Python minor (python3.10 on PATH, else pyenv's): needed only to
# build the stand-in, never to find it up to date.
find_image_python() {
    if [[ -z "$PYTHON" ]]; then
        for candidate in "$(command -v "python$PROFILE_PY" || true)" /usr/bin/python"$PROFILE_PY" \
            $(ls -d "${HOME:-/root}"/.pyenv/versions/"$PROFILE_PY".*/bin/python"$PROFILE_PY" 2>/dev/null | sort -rV); do
            if [[ -n "$candidate" ]] && "$candidate" -c '' >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
        done
        [[ -n "$PYTHON" ]] || die "no working python$PROFILE_PY found (the image's Python); install one or set PYTHON=/path/to/python$PROFILE_PY"
    fi
}
find_image_python

host_py="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || die "cannot run $PYTHON"
[[ "$host_py" == "$PROFILE_PY" ]] \
    || die "$PYTHON is Python $host_py but the image runs Python $PROFILE_PY; set PYTHON=/path/to/python$PROFILE_PY"
host_prefix="$("$PYTHON" -c 'import sys; print(sys.base_prefix)')"

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "need $* but apt-get is not available"
    log "installing $* (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip"
command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap

BUILD_DIR=""
cleanup() {
    local rc=$?
    if [[ -n "$BUILD_DIR" && -d "$BUILD_DIR" ]]; then
        # Never delete through a mount point (a bound /dev or /proc would be the host's).
        local m
        while read -r m; do umount -l "$m" 2>/dev/null || true; done \
            < <(findmnt -rn -o TARGET | grep -F "$BUILD_DIR/" | sort -r || true)
        if findmnt -rn -o TARGET | grep -qF "$BUILD_DIR/"; then
            log "WARNING: mounts remain under $BUILD_DIR; not deleting it"
        else
            rm -rf --one-file-system "$BUILD_DIR"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$BUILD_PARENT"
BUILD_DIR="$(mktemp -d "$BUILD_PARENT/dialsgate-standin.XXXXXX")"
ROOTFS="$BUILD_DIR/rootfs"

# Phase: Debian root file system (mmdebstrap's default mirror; no host name here).
log "phase debootstrap: mmdebstrap --variant=minbase $SUITE (about 40-80 s)"
t="$(now)"
mmdebstrap --quiet --variant=minbase \
    --include=libgomp1,ca-certificates,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6,libuuid1,libexpat1,libnsl2,libtirpc3 \
    "$SUITE" "$ROOTFS" \
    || die "mmdebstrap failed"
T_DEBOOTSTRAP="$(since "$t")"
# The image's interpreter: the host's Python $PROFILE_PY installation (Debian's own may differ),
# without its test suite; its shared libpython is found through ld.so.conf.
mkdir -p "$ROOTFS$IMAGE_PYTHON_PREFIX"
tar -C "$host_prefix" --exclude="./lib/python$PROFILE_PY/test" --exclude='__pycache__' --exclude="./lib/python$PROFILE_PY/site-packages/*" -c . \
    | tar -C "$ROOTFS$IMAGE_PYTHON_PREFIX" -x
echo "$IMAGE_PYTHON_PREFIX/lib" > "$ROOTFS/etc/ld.so.conf.d/image-python.conf"
chroot "$ROOTFS" /sbin/ldconfig
rootfs_py="$(chroot "$ROOTFS" "$IMAGE_PYTHON_PREFIX/bin/python$PROFILE_PY" -c 'import sys, ssl, sqlite3, ctypes, lzma, bz2; print("%d.%d" % sys.version_info[:2])')" \
    || die "the copied Python $PROFILE_PY does not run inside the rootfs (missing shared libraries?)"
log "phase debootstrap done in $T_DEBOOTSTRAP s (image Python $rootfs_py from $host_prefix, $(du -sh --one-file-system "$ROOTFS" | cut -f1))"

# Phase: wheelhouse on the host, cached by the pins hash.
WHEELHOUSE="$CACHE_DIR/wheelhouse/$PINS_SHA-py$PROFILE_PY"
t="$(now)"
if [[ -f "$WHEELHOUSE/.complete" ]]; then
    log "phase wheels: reusing $WHEELHOUSE"
else
    log "phase wheels: $PYTHON -m pip wheel -r pins -c constraints -> $WHEELHOUSE"
    rm -rf "$WHEELHOUSE.tmp"
    mkdir -p "$WHEELHOUSE.tmp"
    set +e
    "$PYTHON" -m pip wheel --progress-bar off --disable-pip-version-check \
        --wheel-dir "$WHEELHOUSE.tmp" -r "$PINS" -c "$CONSTRAINTS" 2>&1 \
        | tee "$BUILD_DIR/pip-wheel.log" \
        | sed -un '/^\(Collecting\|Building wheel\|ERROR\)/s/^/  /p' >&2
    rc="${PIPESTATUS[0]}"
    set -e
    if [[ "$rc" != 0 ]]; then
        grep -v 'is ignored' "$BUILD_DIR/pip-wheel.log" | tail -n 30 >&2
        die "pip wheel failed (exit $rc)"
    fi
    n_wheels="$(find "$WHEELHOUSE.tmp" -name '*.whl' | wc -l)"
    n_pins="$(grep -cE '^[A-Za-z0-9]' "$PINS")"
    (( n_wheels >= n_pins )) || die "pip wheel produced $n_wheels wheels for $n_pins pins; see the output above"
    touch "$WHEELHOUSE.tmp/.complete"
    rm -rf "$WHEELHOUSE"
    mv "$WHEELHOUSE.tmp" "$WHEELHOUSE"
fi
T_WHEELS="$(since "$t")"
log "phase wheels done in $T_WHEELS s ($(find "$WHEELHOUSE" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELHOUSE" | cut -f1))"

# Phase: venv inside the rootfs, installed offline from the wheelhouse, under a clean
# environment (the host's PIP_* settings and pip config must not leak in).
log "phase venv: $VENV inside chroot, pip install --no-index"
t="$(now)"
mkdir -p "$ROOTFS/tmp/wheelhouse"
cp -rl "$WHEELHOUSE"/. "$ROOTFS/tmp/wheelhouse/" 2>/dev/null || cp -r "$WHEELHOUSE"/. "$ROOTFS/tmp/wheelhouse/"
cp "$PINS" "$ROOTFS/tmp/pins.txt"
cp "$CONSTRAINTS" "$ROOTFS/tmp/constraints.txt"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    chroot "$ROOTFS" /bin/sh -eu -c "
        $IMAGE_PYTHON_PREFIX/bin/python$PROFILE_PY -m venv $VENV
        $VENV/bin/python -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \
            --find-links /tmp/wheelhouse -r /tmp/pins.txt -c /tmp/constraints.txt
        $VENV/bin/python -m pip check
        rm -rf /tmp/wheelhouse /tmp/pins.txt /tmp/constraints.txt
        groupadd --gid 1000 mlserver
        useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlserver --shell /bin/bash mlserver
        mkdir -p $WORKDIR_IN_IMAGE /mnt/models
        chown 1000:1000 $WORKDIR_IN_IMAGE
        rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
    " || die "installing the venv in the rootfs failed"
T_VENV="$(since "$t")"
log "phase venv done in $T_VENV s (rootfs $(du -sh --one-file-system "$ROOTFS" | cut -f1))"

# Phase: import into the engine.
log "phase import: $ENGINE_NAME import as $IMAGE"
t="$(now)"
tar --numeric-owner -C "$ROOTFS" -c . | "$ENGINE" import \
    --change 'USER 1000' \
    --change "WORKDIR $WORKDIR_IN_IMAGE" \
    --change "ENV PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV MLSERVER_MODELS_DIR=/mnt/models' \
    --change 'CMD ["/bin/sh","-c","mlserver start $MLSERVER_MODELS_DIR"]' \
    --change "LABEL $LABEL_KEY=$PINS_SHA" \
    --change "LABEL $RECIPE_KEY=$RECIPE_VERSION" \
    --change "LABEL $STANDIN_KEY=$PROFILE_NAME" \
    --message "dialsgate stand-in for $IMAGE" \
    - "$IMAGE" >/dev/null
if [[ -n "${OLD_ID:-}" && "$OLD_ID" != "$("$ENGINE" image inspect --format '{{.Id}}' "$IMAGE")" ]]; then
    # The replaced stand-in is now untagged; drop it (fails harmlessly if a container uses it).
    if "$ENGINE" rmi "$OLD_ID" >/dev/null 2>&1; then log "removed the replaced stand-in ${OLD_ID:7:12}"; fi
fi
T_IMPORT="$(since "$t")"
log "phase import done in $T_IMPORT s"

# Phase: quick check that the image runs and has the packages (no network needed).
t="$(now)"
check="$("$ENGINE" run --rm --network none "$IMAGE" python -c \
    'import os, sys, numpy, sklearn, joblib, scipy, mlserver; print("uid", os.getuid(), "python", sys.version.split()[0], "mlserver", mlserver.__version__, "numpy", numpy.__version__, "sklearn", sklearn.__version__)')" \
    || die "the new image does not run python/mlserver"
log "phase check done in $(since "$t") s: $check"

size="$("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"
log "built $IMAGE, $size"
log "timings: debootstrap ${T_DEBOOTSTRAP} s, wheels ${T_WHEELS} s, venv ${T_VENV} s, import ${T_IMPORT} s, total $(since "$T_TOTAL") s"
