#!/usr/bin/env bash
# Builds a small workspace image with this machine's Node and code-server, for
# testing the IDE inside a container without an image registry:
#
#   scripts/code-server-test-image.sh CODE_SERVER TAG
#
# CODE_SERVER is the code-server executable scripts/install-code-server.sh
# printed (…/node_modules/.bin/code-server). The image is FROM scratch: busybox
# (busybox-static) as the shell, node and the shared libraries it and
# code-server's native modules link to, code-server's install tree at
# /opt/code-server, a dev8 user (uid 1000), and the label
# dev8.code-server=/opt/code-server/node_modules/.bin/code-server that tells
# Dev8's docker runtime where it is. Skips the build when TAG exists with the
# same content (a label holds a hash of the inputs).
set -euo pipefail

cs=${1:?usage: $0 CODE_SERVER TAG}
tag=${2:?usage: $0 CODE_SERVER TAG}
prefix=$(cd "$(dirname "$(readlink -f "$cs")")/../../../.." && pwd) # holds node_modules/code-server
node=$(command -v node)
[ -x /bin/busybox ] || { echo "$0: /bin/busybox (busybox-static) is needed" >&2; exit 1; }

key=$( { "$node" --version; cat "$prefix/package.json"; sha256sum /bin/busybox "$node"; echo v1; } | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "dev8.test.key"}}' "$tag" 2>/dev/null || true)" = "$key" ]; then
	echo "$0: $tag is up to date"
	exit 0
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/bin" "$ctx/root/usr/bin" "$ctx/root/etc" "$ctx/root/home/dev8" "$ctx/root/tmp" "$ctx/root/opt"
cp /bin/busybox "$ctx/root/bin/busybox"
for a in sh env ls cat id stat mkdir rm ps sleep uname; do ln -s busybox "$ctx/root/bin/$a"; done
ln -s /bin/busybox "$ctx/root/usr/bin/env"
cp "$node" "$ctx/root/usr/bin/node"
cp -a "$prefix" "$ctx/root/opt/code-server"
# Shared libraries of node and of every native module, with the loader.
{
	ldd "$node"
	find "$prefix" -name '*.node' -path '*linux*' -o -name '*.node' -path '*Release*' | while read -r m; do ldd "$m" 2>/dev/null || true; done
	ldd "$(command -v rg)" 2>/dev/null || true
} | awk '/=> \// {print $3} /^\s*\/lib64\// {print $1}' | sort -u | while read -r lib; do
	mkdir -p "$ctx/root$(dirname "$lib")"
	cp -L "$lib" "$ctx/root$lib"
done
mkdir -p "$ctx/root/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$ctx/root/lib64/"
printf 'root:x:0:0:root:/root:/bin/sh\ndev8:x:1000:1000:Dev8:/home/dev8:/bin/sh\n' >"$ctx/root/etc/passwd"
printf 'root:x:0:\ndev8:x:1000:\n' >"$ctx/root/etc/group"
chmod 1777 "$ctx/root/tmp"
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY root /
ENV PATH=/usr/bin:/bin HOME=/home/dev8
LABEL dev8.code-server=/opt/code-server/node_modules/.bin/code-server dev8.test=true dev8.test.key=$key
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
echo "$0: built $tag"
