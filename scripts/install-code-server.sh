#!/usr/bin/env bash
# Installs code-server (VS Code in the browser) from npm for tests and CI, and
# prints the path of its executable on the last line of stdout.
#
#   scripts/install-code-server.sh [PREFIX]   (default $HOME/.cache/dev8/code-server)
#
# 4.99.4 is pinned because it is the newest release that runs on Node 20. Its
# install compiles native modules (hence the apt packages) and its ripgrep
# dependency would download a binary from GitHub, which is unreachable here, so
# the download cache is seeded with Debian's rg first. A second run is a fast
# no-op. Everything but the final path goes to stderr so callers can do
#   DEV8_CODE_SERVER=$(scripts/install-code-server.sh | tail -n1)
set -euo pipefail

VERSION=4.99.4
PREFIX=${1:-${HOME}/.cache/dev8/code-server}
BIN=${PREFIX}/node_modules/.bin/code-server

log() { echo "install-code-server: $*" >&2; }

installed_version() {
	# code-server --version prints "4.99.4 <commit> with Code <version>", after
	# a log line on its very first run (when it writes its config file).
	[ -x "$BIN" ] && "$BIN" --version 2>/dev/null | awk '/ with Code / {print $1; exit}'
}

if [ "$(installed_version || true)" = "$VERSION" ]; then
	echo "$BIN"
	exit 0
fi

for tool in node npm; do
	command -v "$tool" >/dev/null || { log "$tool is required (Node 20)"; exit 1; }
done

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
PKGS=(build-essential pkg-config python3 libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev ripgrep)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	$SUDO apt-get update >&2
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

# @vscode/ripgrep's postinstall looks in this cache before downloading.
cache="$(node -e 'console.log(require("os").tmpdir())')/vscode-ripgrep-cache-1.15.11"
tarball="$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
if [ ! -s "$tarball" ]; then
	log "seeding ripgrep cache from $(command -v rg)"
	mkdir -p "$cache"
	tmp=$(mktemp -d)
	cp "$(command -v rg)" "$tmp/rg"
	tar -C "$tmp" -czf "$tarball.tmp" rg
	mv "$tarball.tmp" "$tarball"
	rm -rf "$tmp"
fi

# node-gyp would download Node's headers to build native modules; the nodejs
# package already ships them under /usr/include/node.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/common.gypi ]; then
	export npm_config_nodedir=/usr
fi

log "npm install code-server@$VERSION into $PREFIX (1-2 minutes)"
mkdir -p "$PREFIX"
[ -f "$PREFIX/package.json" ] || echo '{"private":true}' >"$PREFIX/package.json"
(
	cd "$PREFIX"
	npm_config_yes=true npm_config_unsafe_perm=true npm_config_fund=false npm_config_audit=false \
		npm install --no-save --loglevel=error "code-server@$VERSION" >&2
)

got=$(installed_version || true)
if [ "$got" != "$VERSION" ]; then
	log "code-server did not install: $BIN reports '${got}'"
	exit 1
fi
echo "$BIN"
