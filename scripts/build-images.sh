#!/usr/bin/env bash
# Builds Dev8's workspace images (images/): base → nodejs, base → python,
# nodejs → fullstack, tagged ${IMAGE_PREFIX}<name>:${IMAGE_TAG}. `make images`
# runs it. Works with no container registry: everything the images hold comes
# from Debian's packages and the npm registry (plus VS Code extensions from
# open-vsx.org, skipped with a NOTE where that cannot be reached).
#
#   IMAGE_PREFIX    default dev8/ (e.g. registry.example/dev8/ to push there;
#                   then point the server at them: --template-image
#                   nodejs=registry.example/dev8/nodejs:1 …)
#   IMAGE_TAG       default latest
#   IMAGES          which to build (default "base nodejs python fullstack";
#                   a child needs its parent built first, or present)
#   DEBIAN_SUITE    Debian release of the images (default trixie: Debian 13,
#                   whose Node 20 code-server 4.99.4 needs)
#   DEBIAN_IMAGE    the Debian image to start from (default
#                   debian:${DEBIAN_SUITE}-slim; a mirror's copy works too).
#                   Used when present or pullable; otherwise (see
#                   DEBIAN_BOOTSTRAP) the root file system is made from the
#                   Debian mirror with mmdebstrap and imported as
#                   dev8/debian:${DEBIAN_SUITE}, which later builds reuse
#                   (`docker rmi dev8/debian:trixie` makes a fresh one)
#   DEBIAN_BOOTSTRAP  auto (default: mmdebstrap when DEBIAN_IMAGE cannot be
#                   had), always (never pull), never (fail instead)
#   DEBIAN_MIRROR   default http://deb.debian.org/debian (with
#                   DEBIAN_SECURITY_MIRROR, default
#                   http://deb.debian.org/debian-security): where mmdebstrap
#                   and so the images' apt get packages
#   EXTRA_CA_FILE   a CA bundle for an HTTPS proxy that intercepts TLS (npm
#                   fails with SELF_SIGNED_CERT_IN_CHAIN without it). Given to
#                   the RUN steps that download as a BuildKit secret: it is
#                   never stored in an image. Default: auto, which uses
#                   /etc/ssl/certs/ca-certificates.crt when this host trusts
#                   a CA for the npm registry that Debian's (Mozilla's) list
#                   lacks; "none" turns it off
#   DOCKER          the docker client (default: the first on PATH that can
#                   build with BuildKit: with a buildx plugin, or Docker ≤ 22's
#                   built-in one, e.g. Debian's docker.io)
#   BUILD_PROGRESS  docker build --progress (default plain, so NOTEs show)
#
# Needs a Docker engine, and mmdebstrap when no Debian image can be pulled
# (installed here with apt-get when run as root). `make images` is not part
# of `make test`: the tests build their own small images.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${IMAGE_PREFIX:-dev8/}
tag=${IMAGE_TAG:-latest}
images=${IMAGES:-base nodejs python fullstack}
suite=${DEBIAN_SUITE:-trixie}
debian=${DEBIAN_IMAGE:-debian:${suite}-slim}
bootstrap=${DEBIAN_BOOTSTRAP:-auto}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
extra_ca=${EXTRA_CA_FILE:-auto}
progress=${BUILD_PROGRESS:-plain}
cached_debian=dev8/debian:${suite}

log() { echo "make images: $*" >&2; }
die() { log "$*"; exit 1; }

case $bootstrap in auto | always | never) ;; *) die "DEBIAN_BOOTSTRAP is '$bootstrap': want auto, always or never" ;; esac
case $extra_ca in auto | none | "") ;; *) [ -r "$extra_ca" ] || die "EXTRA_CA_FILE=$extra_ca cannot be read" ;; esac

# A docker client that builds with BuildKit (the Dockerfiles use RUN --mount
# for cache mounts and the CA secret). Docker 23+ clients need the buildx
# plugin for that; older ones (Debian 12's docker.io) have it built in.
buildkit_client() {
	local d v
	for d in "$@"; do
		[ -x "$d" ] || continue
		if "$d" buildx version >/dev/null 2>&1; then echo "$d"; return 0; fi
		v=$("$d" version --format '{{.Client.Version}}' 2>/dev/null || true)
		if [[ $v =~ ^([0-9]+)\. ]] && [ "${BASH_REMATCH[1]}" -ge 18 ] && [ "${BASH_REMATCH[1]}" -lt 23 ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}
if [ -n "${DOCKER:-}" ]; then
	docker=$(command -v "$DOCKER") || die "DOCKER=$DOCKER: no such command"
	buildkit_client "$docker" >/dev/null || die "DOCKER=$DOCKER cannot build with BuildKit: install the buildx plugin (docker-buildx-plugin from Docker's packages, docker-buildx on Debian 13) or use a Docker ≤ 22 client"
else
	mapfile -t clients < <(type -ap docker | awk '!seen[$0]++')
	[ ${#clients[@]} -gt 0 ] || die "no docker client on PATH (Debian: apt-get install docker.io)"
	docker=$(buildkit_client "${clients[@]}") || die "no docker client here can build with BuildKit (${clients[*]}): install the buildx plugin (docker-buildx-plugin from Docker's packages, docker-buildx on Debian 13), or put a Docker ≤ 22 client (Debian 12's docker.io) first on PATH, or name one with DOCKER=/usr/bin/docker"
fi
export DOCKER_BUILDKIT=1
"$docker" info >/dev/null 2>&1 || die "no Docker engine answers (scripts/dockerd.sh starts one on Debian)"

have_image() { "$docker" image inspect "$1" >/dev/null 2>&1; }

# bootstrap_debian makes ${cached_debian} from the Debian mirror: a minimal
# root file system (mmdebstrap --variant=minbase, ~15-30 s) with the suite's
# updates and security archives in its apt sources, imported with the PATH
# and CMD Docker's Debian images have (an imported image has no ENV, and the
# Dockerfiles extend PATH).
bootstrap_debian() {
	if ! command -v mmdebstrap >/dev/null; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			log "installing mmdebstrap (apt-get) to make a Debian root file system"
			DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap debian-archive-keyring >&2 ||
				die "apt-get install mmdebstrap failed (see above)"
		else
			die "no Debian image ($debian cannot be pulled) and no mmdebstrap to make one: install it (Debian/Ubuntu: sudo apt-get install mmdebstrap debian-archive-keyring) and run make images again, or give DEBIAN_IMAGE an image you have"
		fi
	fi
	local tmp sources
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064 # expand $tmp now
	trap "rm -rf '$tmp'" EXIT
	sources=("deb $mirror $suite main")
	case $suite in
	sid | unstable | experimental) ;;
	*) sources+=("deb $mirror $suite-updates main" "deb $security_mirror $suite-security main") ;;
	esac
	log "making a Debian $suite root file system from $mirror with mmdebstrap"
	local start=$SECONDS
	mmdebstrap --variant=minbase --quiet "$suite" "$tmp/rootfs.tar" "${sources[@]}" >&2 ||
		die "mmdebstrap $suite from $mirror failed (see above): is the mirror reachable? Another one: DEBIAN_MIRROR=http://…/debian"
	"$docker" import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		--change "LABEL dev8.debian.suite=$suite dev8.debian.mirror=$mirror" \
		--message "mmdebstrap --variant=minbase $suite $mirror (scripts/build-images.sh)" \
		"$tmp/rootfs.tar" "$cached_debian" >/dev/null || die "docker import of the $suite root file system failed"
	rm -rf "$tmp"
	trap - EXIT
	log "imported $cached_debian in $((SECONDS - start)) s ($("$docker" image inspect -f '{{.Size}}' "$cached_debian" | awk '{printf "%d MB", $1/1e6}'))"
}

if [[ " $images " == *" base "* ]]; then
	use_mirror=
	if [ "$bootstrap" = always ]; then
		use_mirror=1
	elif ! have_image "$debian"; then
		log "pulling $debian"
		if ! why=$("$docker" pull "$debian" 2>&1 >/dev/null); then
			[ "$bootstrap" = auto ] || die "cannot pull $debian ($(tail -n1 <<<"$why")) and DEBIAN_BOOTSTRAP=never"
			log "cannot pull $debian ($(tail -n1 <<<"$why")): using Debian $suite from the Debian mirror instead"
			use_mirror=1
		fi
	fi
	if [ -n "$use_mirror" ]; then
		if have_image "$cached_debian"; then
			log "reusing $cached_debian (made $("$docker" image inspect -f '{{.Created}}' "$cached_debian" | cut -c1-10); docker rmi it for a fresh one)"
		else
			bootstrap_debian
		fi
		debian=$cached_debian
	fi
fi

# The extra CA: only ever a build secret. auto: the host's bundle when the npm
# registry's certificate verifies with it but not with Mozilla's list alone
# (what Debian's ca-certificates gives the image), i.e. a proxy re-signs TLS.
registry=https://registry.npmjs.org/
case $extra_ca in
none | "") extra_ca= ;;
auto)
	extra_ca=
	host_bundle=/etc/ssl/certs/ca-certificates.crt
	if [ -d /usr/share/ca-certificates/mozilla ] && [ -s "$host_bundle" ] && command -v curl >/dev/null; then
		probe=$(mktemp -d)
		cat /usr/share/ca-certificates/mozilla/*.crt >"$probe/mozilla.pem"
		if ! curl -s --max-time 15 --cacert "$probe/mozilla.pem" --capath "$probe" -o /dev/null "$registry" &&
			curl -s --max-time 15 --cacert "$host_bundle" -o /dev/null "$registry"; then
			extra_ca=$host_bundle
			log "the npm registry's certificate is signed by a CA only this host trusts (a TLS-intercepting proxy): giving the builds $extra_ca as a secret (EXTRA_CA_FILE=none turns this off)"
		fi
		rm -rf "$probe"
	fi
	;;
esac

parent() {
	case $1 in
	base) echo "" ;;
	nodejs | python) echo "${prefix}base:${tag}" ;;
	fullstack) echo "${prefix}nodejs:${tag}" ;;
	*) die "unknown image $1 (images/: base nodejs python fullstack)" ;;
	esac
}

declare -A rebuilt=()
for name in $images; do
	ref=${prefix}${name}:${tag}
	before=$("$docker" image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)
	args=(--tag "$ref" --label "dev8.image=${name}" --progress "$progress")
	if [ "$name" = base ]; then
		args+=(--build-arg "DEBIAN_IMAGE=${debian}")
	else
		p=$(parent "$name")
		have_image "$p" || die "building $ref needs $p: build that first (make images builds them all in order)"
		args+=(--build-arg "BASE_IMAGE=$p")
	fi
	[ -z "$extra_ca" ] || args+=(--secret "id=extra_ca,src=${extra_ca}")
	log "building $ref"
	start=$(date +%s)
	# Host networking: the builds download, and these machines run dockerd
	# without its bridge's iptables rules.
	"$docker" build --network host "${args[@]}" "images/${name}" ||
		die "building $ref failed (see above)$([ -n "$extra_ca" ] || echo "; if npm says SELF_SIGNED_CERT_IN_CHAIN, give the proxy's CA: EXTRA_CA_FILE=/etc/ssl/certs/ca-certificates.crt make images")"
	log "built $ref in $(($(date +%s) - start)) s ($("$docker" image inspect -f '{{.Size}}' "$ref" | awk '{printf "%d MB", $1/1e6}'))"
	[ "$("$docker" image inspect -f '{{.Id}}' "$ref")" = "$before" ] || rebuilt[$name]=1
done

# Each image that changed, as its workspace user with no network:
# code-server (at the path the dev8.code-server label gives the docker
# runtime) must run and the user must not be root (a few seconds each, so
# unchanged images are not checked again). What the builds skipped (e.g.
# extensions with no marketplace) is shown on every run, cached or not, each
# line once (an image keeps its parent's notes too).
notes=()
for name in $images; do
	ref=${prefix}${name}:${tag}
	if [ -z "${rebuilt[$name]:-}" ]; then
		mapfile -t -O "${#notes[@]}" notes < <("$docker" run --rm --network none --entrypoint cat "$ref" /usr/local/share/dev8/build-notes.txt 2>/dev/null || true)
		continue
	fi
	cs=$("$docker" image inspect -f '{{index .Config.Labels "dev8.code-server"}}' "$ref")
	# shellcheck disable=SC2016 # expanded by the container's shell
	out=$("$docker" run --rm --network none --entrypoint /bin/sh "$ref" -c '
		echo "uid $(id -u)"
		echo "code-server $("$0" --version 2>&1 | awk "/ with Code / {print \$1}")"
		sed "s/^/note /" /usr/local/share/dev8/build-notes.txt 2>/dev/null || true' "${cs:-/nonexistent}") ||
		die "$ref: cannot run a container of it"
	uid=$(awk '$1 == "uid" {print $2}' <<<"$out")
	csv=$(awk '$1 == "code-server" {print $2}' <<<"$out")
	if [ -z "$uid" ] || [ "$uid" = 0 ]; then
		die "$ref: its user is root (uid ${uid:-?}); workspaces run as dev8 (uid 1000)"
	fi
	[ -n "$csv" ] || die "$ref: code-server (${cs:-no dev8.code-server label}) does not run as uid $uid"
	log "checked $ref: uid $uid, code-server $csv"
	mapfile -t -O "${#notes[@]}" notes < <(sed -n 's/^note //p' <<<"$out")
done
printf '%s\n' "${notes[@]}" | awk 'NF && !seen[$0]++' | while IFS= read -r line; do log "NOTE $line"; done
log "built $(for n in $images; do printf '%s ' "${prefix}${n}:${tag}"; done)"
