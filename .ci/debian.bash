# Sourced by .ci/setup.d/*.sh: install Debian packages when root, or say why not and carry on. A
# test that needs a missing one then fails under CI=true, naming what is missing.
#   debian_install TAG "what needs it" PACKAGE...   (returns 1 when nothing was installed)
debian_install() {
  local tag=$1 needs=$2
  shift 2
  if [ "$(id -u)" != 0 ]; then
    echo "$tag: not root; cannot install $* ($needs)" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || echo "$tag: apt-get update failed; trying with the cached lists" >&2
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || { echo "$tag: installing $* failed ($needs)" >&2; return 1; }
}
