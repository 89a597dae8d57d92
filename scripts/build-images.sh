#!/usr/bin/env bash
# Builds Dev8's workspace images (images/): base → nodejs, base → python,
# nodejs → fullstack, tagged ${IMAGE_PREFIX}<name>:${IMAGE_TAG}. `make images`
# runs it.
#
#   IMAGE_PREFIX   default dev8/ (e.g. registry.example/dev8/ to push there;
#                  then point the server at them: --template-image
#                  nodejs=registry.example/dev8/nodejs:1 …)
#   IMAGE_TAG      default latest
#   DEBIAN_IMAGE   the Debian 12 image to start from (default debian:12-slim;
#                  a mirror's copy works too)
#   IMAGES         which to build (default "base nodejs python fullstack")
#
# Building needs a Docker engine that has DEBIAN_IMAGE or can pull it, and
# network access for what the Dockerfiles download: Debian's packages,
# code-server's release from github.com, Node.js from nodejs.org, PyPI,
# go.dev, sh.rustup.rs and the extensions from open-vsx.org. Without them it
# says what is missing and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${IMAGE_PREFIX:-dev8/}
tag=${IMAGE_TAG:-latest}
debian=${DEBIAN_IMAGE:-debian:12-slim}
images=${IMAGES:-base nodejs python fullstack}

die() { echo "make images: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (scripts/dockerd.sh starts one on Debian)"
if ! docker image inspect "$debian" >/dev/null 2>&1; then
	echo "make images: pulling $debian"
	docker pull "$debian" >/dev/null 2>&1 || die "cannot pull $debian: building the workspace images needs an image registry (Docker Hub or a mirror: DEBIAN_IMAGE=mirror.example/library/debian:12-slim) and network access to deb.debian.org, github.com (code-server), nodejs.org, pypi.org, go.dev, sh.rustup.rs and open-vsx.org. None is needed to run Dev8 or its tests: those build their own small images."
fi

parent() {
	case $1 in
	base) echo "" ;;
	nodejs | python) echo "${prefix}base:${tag}" ;;
	fullstack) echo "${prefix}nodejs:${tag}" ;;
	*) die "unknown image $1 (images/: base nodejs python fullstack)" ;;
	esac
}

for name in $images; do
	args=(--tag "${prefix}${name}:${tag}" --label "dev8.image=${name}")
	if [ "$name" = base ]; then
		args+=(--build-arg "DEBIAN_IMAGE=${debian}")
	else
		args+=(--build-arg "BASE_IMAGE=$(parent "$name")")
	fi
	echo "make images: building ${prefix}${name}:${tag}"
	# Host networking: the builds download, and these machines run dockerd
	# without its bridge's iptables rules.
	docker build --network host "${args[@]}" "images/${name}" || die "building ${prefix}${name}:${tag} failed (see above)"
done
echo "make images: built $(for n in $images; do printf '%s ' "${prefix}${n}:${tag}"; done)"
