#!/usr/bin/env bash
# Installs VS Code extensions into the workspace user's code-server
# extensions directory while an image builds (dev8/base puts this script at
# /usr/local/lib/dev8/install-extensions; every image's Dockerfile runs it as
# root with its own extensions.txt):
#
#   install-extensions IMAGE FILE     (FILE: one extension id a line, # comments)
#
# The extensions come from code-server's marketplace (open-vsx.org, or
# EXTENSIONS_GALLERY's serviceUrl), the only place they are published. When
# it cannot be reached (no internet, as on machines that only reach Debian's
# and npm's registries) the image is still complete without them: the step
# prints a NOTE, records it in /usr/local/share/dev8/build-notes.txt (which
# `make images` prints at the end) and succeeds. When the marketplace answers
# but an extension does not install, the build fails: that is a real error.
#
# An extra CA bundle (BuildKit secret extra_ca, for TLS-intercepting proxies)
# is used when present and never copied anywhere.
set -euo pipefail

image=${1:?usage: install-extensions IMAGE FILE}
list=${2:?usage: install-extensions IMAGE FILE}
dir=/home/dev8/.local/share/code-server/extensions
notes=/usr/local/share/dev8/build-notes.txt

mapfile -t exts < <(sed 's/#.*//' "$list" | awk 'NF {print $1}')
[ ${#exts[@]} -gt 0 ] || exit 0

service=https://open-vsx.org/vscode/gallery
if [ -n "${EXTENSIONS_GALLERY:-}" ]; then
	service=$(jq -r '.serviceUrl // empty' <<<"$EXTENSIONS_GALLERY")
fi
host=${service#*://}
host=${host%%/*}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl_ca=()
if [ -s /run/secrets/extra_ca ]; then
	export NODE_EXTRA_CA_CERTS=/run/secrets/extra_ca
	cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra_ca >"$work/ca.pem"
	curl_ca=(--cacert "$work/ca.pem")
fi

# Any HTTP answer means reachable; curl's 000 means no connection at all.
code=$(curl -sS --max-time 20 "${curl_ca[@]}" -o /dev/null -w '%{http_code}' "https://${host}/" 2>"$work/err" || true)
if [ "$code" = 000 ] || [ -z "$code" ]; then
	reason=$(tr '\n' ' ' <"$work/err" | sed 's/^curl: ([0-9]*) //' | cut -c1-120)
	msg="${image}: VS Code extensions ${exts[*]} skipped: ${host} cannot be reached (${reason% }); install them from the IDE's Extensions view, or rebuild where it can"
	echo "NOTE: $msg"
	mkdir -p "$(dirname "$notes")"
	echo "$msg" >>"$notes"
	exit 0
fi

# code-server writes its own config under HOME: a throwaway one, so nothing
# of root's ends up in the image.
failed=()
for ext in "${exts[@]}"; do
	HOME=$work code-server --extensions-dir "$dir" --install-extension "$ext" || failed+=("$ext")
done
chown -R 1000:1000 /home/dev8/.local
if [ ${#failed[@]} -gt 0 ]; then
	echo "install-extensions: ${host} answers but ${failed[*]} did not install (see above)" >&2
	exit 1
fi
