package kubernetes

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// SupervisorSource is how the supervisor gets into a workspace pod
// (Config.SupervisorFrom).
type SupervisorSource string

const (
	// SupervisorFromServer: the workspace container's command is
	// Bootstrap, a /bin/sh script that downloads the supervisor from the
	// server (GET <agent URL>/api/v1/environments/<id>/supervisor, with the
	// workspace's agent token), checks it and runs it. No init container:
	// the pod starts as fast as a bare pod of its image. The image needs
	// /bin/sh, curl or wget, chmod, and sha256sum (or at least wc); a first
	// start also needs mkfifo and cp (SeedHome). Dev8's images have them,
	// and so has any image with coreutils or busybox.
	SupervisorFromServer SupervisorSource = "server"
	// SupervisorFromImage: an init container of Config.SupervisorImage
	// copies the supervisor into the pod (SupervisorInstall). Works with
	// any image, at the cost of a container started and waited for before
	// the workspace's (about a second: the kubelet notices an init
	// container's exit at its next relist).
	SupervisorFromImage SupervisorSource = "image"
)

// SupervisorURLPath is where, below the agent URL, a workspace fetches
// its supervisor (the server's GET /environments/{id}/supervisor).
const SupervisorURLPath = "/api/v1/environments/%s/supervisor"

// The exit codes of Bootstrap's failures, which exitReason turns into an
// environment's reason. Chosen outside what shells (126, 127), signals
// (128+) and common programs use.
const (
	exitNoDownloader = 81 // neither curl nor wget
	exitDownload     = 82 // the request failed
	exitVerify       = 83 // size or checksum do not match, or cannot be checked
	exitInstall      = 84 // the token, chmod, the FIFO
)

// Bootstrap is the workspace container's script with
// SupervisorFromServer: sh -c Bootstrap dev8-bootstrap BIN SEEDED.
// It finds curl or wget, downloads the supervisor to BIN (in the pod's
// emptyDir) with the agent token, retrying for about 2 minutes while the
// server does not answer (a restart), checks it
// against the server's X-Dev8-Sha256 header with sha256sum (without
// sha256sum, only its size against Content-Length, with wc, and says so
// on stderr), makes it executable and execs it as `BIN supervisor`. When
// SEEDED is not empty, the home is being seeded on this start by the
// dev8-home container (SeedHome): after the download it waits for its
// word on that FIFO, so the supervisor starts in a home that is all
// there. Every
// failure prints one line on stderr (the container's termination message)
// and exits with one of the exit* codes.
const Bootstrap = `set -u
bin=$1 seeded=$2
url="${DEV8_AGENT_URL%/}/api/v1/environments/${DEV8_ENVIRONMENT_ID}/supervisor"
fail() { code=$1; shift; echo "$*" >&2; exit "$code"; }
# last FILE: the last line of FILE that is not empty, in $last.
last() { last=; while IFS= read -r l; do [ -z "$l" ] || last=$l; done <"$1"; }
cr=$(printf '\r')

if [ -z "${DEV8_AGENT_URL:-}" ]; then
	fail 82 "could not download the supervisor: the workspace was given no server URL"
fi
token=
IFS= read -r token <"$DEV8_AGENT_TOKEN_FILE" || [ -n "$token" ] ||
	fail 84 "cannot read the agent token from $DEV8_AGENT_TOKEN_FILE"
if command -v curl >/dev/null 2>&1; then
	fetch=curl
elif command -v wget >/dev/null 2>&1; then
	fetch=wget
else
	fail 81 "the workspace image has neither curl nor wget to fetch the supervisor"
fi

# The response's headers go to $hdr: curl -D, wget -S (on stderr, with
# its error message last). The token is on the command line, which only
# this container's processes see (no user's yet).
# A server being restarted (or replaced) does not answer for a while: as
# the supervisor redials its tunnel, the download is retried, 1, 2, 4 then
# every 8 s, about 2 minutes in all (DEV8_BOOTSTRAP_TRIES, for tests).
hdr=$bin.headers
tries=${DEV8_BOOTSTRAP_TRIES:-20} pause=1
while :; do
	if [ "$fetch" = curl ]; then
		curl -fsS --connect-timeout 10 --max-time 300 -D "$hdr" -o "$bin" -H "Authorization: Bearer $token" "$url" 2>"$hdr.err" && break
		last "$hdr.err"
	else
		wget -S -O "$bin" --header "Authorization: Bearer $token" "$url" 2>"$hdr" && break
		last "$hdr"
	fi
	tries=$((tries - 1))
	[ "$tries" -gt 0 ] || fail 82 "could not download the supervisor from $url: $last"
	echo "dev8: downloading the supervisor from $url: $last; again in $pause s" >&2
	sleep "$pause"
	[ "$pause" -ge 8 ] || pause=$((pause * 2))
done

# The checksum and length the server sent.
want= length=
while IFS= read -r line; do
	line=${line%"$cr"}
	line=${line#"${line%%[! ]*}"}
	value=${line#*:}
	value=${value#"${value%%[! ]*}"}
	case $line in
	[Xx]-[Dd][Ee][Vv]8-[Ss][Hh][Aa]256:*) want=$value ;;
	[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]:*) length=$value ;;
	esac
done <"$hdr"
[ -n "$want" ] || fail 83 "the server at $url sent the supervisor without its X-Dev8-Sha256 checksum"
if command -v sha256sum >/dev/null 2>&1; then
	got=$(sha256sum "$bin") || fail 83 "cannot compute the downloaded supervisor's checksum"
	got=${got%% *}
	[ "$got" = "$want" ] ||
		fail 83 "the supervisor downloaded from $url does not match its checksum (sha256 $got, the server sent $want)"
elif command -v wc >/dev/null 2>&1 && [ -n "$length" ]; then
	echo "dev8: no sha256sum in the workspace image: the supervisor's size is checked, not its checksum" >&2
	got=$(wc -c <"$bin") || fail 83 "cannot read the downloaded supervisor's size"
	[ "$((got))" -eq "$((length))" ] ||
		fail 83 "the supervisor downloaded from $url has $((got)) bytes, the server sent $length"
else
	fail 83 "the workspace image has neither sha256sum nor wc to check the supervisor downloaded from $url"
fi
chmod 0755 "$bin" || fail 84 "cannot make the supervisor executable (chmod)"
# The home, if this start seeds it: the supervisor starts in a home that
# is all there. Waited for after the download, which goes on meanwhile
# (the kubelet starts the dev8-home container after this one).
if [ -n "$seeded" ]; then
	mkfifo "$seeded" 2>/dev/null || [ -p "$seeded" ] ||
		fail 84 "cannot make the FIFO $seeded (mkfifo) to wait for the home to be seeded"
	IFS= read -r status <"$seeded" || status="the dev8-home container said nothing"
	[ "$status" = ok ] || echo "dev8: the home volume was seeded from the image in part: $status" >&2
fi
exec "$bin" supervisor
`

// SeedHome is the dev8-home container's script with
// SupervisorFromServer: sh -c SeedHome dev8-seed-home SRC DST SEEDED. It
// runs beside the workspace container (not before it: an init container
// costs a kubelet relist), from the workspace image, whose home SRC it
// sees, copies it into DST, the home's new volume, when DST is empty (as
// supervisor.SeedHome does), and tells the workspace's Bootstrap on the
// FIFO SEEDED: "ok", or why not all was copied (a home partly there
// beats a workspace that does not start).
const SeedHome = `set -u
src=$1 dst=$2 seeded=$3
mkfifo "$seeded" 2>/dev/null || [ -p "$seeded" ] || {
	echo "cannot make the FIFO $seeded (mkfifo) to tell the workspace the home is seeded" >&2
	exit 1
}
status=ok
empty=true
for f in "$dst"/* "$dst"/.[!.]* "$dst"/..?*; do
	if [ -e "$f" ] || [ -L "$f" ]; then
		empty=false
		break
	fi
done
if $empty && [ -d "$src" ]; then
	if ! cp -a "$src/." "$dst/" 2>"$seeded.err"; then
		last=
		while IFS= read -r l; do
			echo "$l" >&2
			[ -z "$l" ] || last=$l
		done <"$seeded.err"
		status="cp: $last"
	fi
fi
echo "$status" >"$seeded"
`

// seededFIFO is where SeedHome tells Bootstrap the home is seeded (the
// pod's own memory-backed RunDir, which both containers mount).
const seededFIFO = RunDir + "/home-seeded"

// bootstrapReason is the environment's reason for the workspace
// container's exit with code and termination message msg when Bootstrap
// started it; ok false for other codes (the supervisor's own).
func bootstrapReason(code int32, msg string) (string, bool) {
	msg = strings.TrimSpace(msg)
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	switch code {
	case exitNoDownloader:
		return "the workspace image has neither curl nor wget to fetch the supervisor from the server: use --kubernetes-supervisor-from image", true
	case exitDownload, exitVerify, exitInstall:
		return msg, true
	}
	return "", false
}

// fetchFailure is why the workspace container of a pod that fetches its
// supervisor (Bootstrap) ended without it: its image has no shell, or
// Bootstrap failed; permanent when no retry can mend it (the image lacks
// what Bootstrap needs). ok false when that is not why it ended.
func fetchFailure(p *corev1.Pod) (reason string, permanent, ok bool) {
	if !fetches(p) {
		return "", false, false
	}
	st := containerStatus(p, containerWorkspace)
	if st == nil || st.State.Terminated == nil {
		return "", false, false
	}
	t := st.State.Terminated
	if reason, ok := noShell(t); ok {
		return reason, true, true
	}
	if reason, ok := bootstrapReason(t.ExitCode, t.Message); ok {
		return reason, t.ExitCode == exitNoDownloader, true
	}
	return "", false, false
}

// noShell is the reason for a workspace container that could not start
// because its image has no /bin/sh to run Bootstrap with; ok false when
// that is not why.
func noShell(t *corev1.ContainerStateTerminated) (string, bool) {
	if t == nil || !strings.Contains(t.Message, "/bin/sh") || !strings.Contains(strings.ToLower(t.Message), "no such file") {
		return "", false
	}
	return fmt.Sprintf("the workspace image has no /bin/sh to fetch the supervisor with (%s): use --kubernetes-supervisor-from image", strings.TrimSpace(t.Message)), true
}
