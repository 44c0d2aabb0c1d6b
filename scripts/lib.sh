# Shared by the test scripts (sourced, not run): running as root or through sudo, step
# headings, and installing missing Debian packages on a fresh machine.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
step() { printf '\n==> %s\n' "$*"; }

# apt_install PKG...: installs the given Debian packages; nothing when none is given.
apt_install() {
  [ $# -gt 0 ] || return 0
  step "installing $*"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
