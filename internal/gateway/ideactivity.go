package gateway

import (
	"bytes"
	_ "embed"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
)

// What counts as using the IDE. code-server's own heartbeat cannot say: it
// advances every minute while any tab holds its websocket open, so an idle
// tab would keep a workspace running for ever. Instead the proxy adds a
// small script to the workbench page that reports keys, clicks, taps and
// scrolling (ideactivity.js), at most once per IDEActivityInterval per tab,
// and opening the workbench counts once. Nothing else through the proxy
// counts.

//go:embed ideactivity.js
var ideActivityScript []byte

// DefaultIDEActivityInterval is how often at most a busy IDE tab reports.
const DefaultIDEActivityInterval = time.Minute

// ActivityHeader must be on every activity report. A page on another
// site cannot add a custom header to a cross-origin request without a CORS
// preflight, which this server refuses, so the header (with the Origin
// check) keeps other sites from reporting with a visitor's cookie.
const ActivityHeader = "X-Dev8-Activity"

// maxWorkbenchBytes bounds the workbench page the proxy rewrites; a bigger
// one passes through untouched. code-server's is about 3 KiB.
const maxWorkbenchBytes = 1 << 20

// ideActivityScriptPath is where the path-based IDE's page loads the
// activity script; appActivityScriptPath where an IDE on its own origin
// does. The script reports to "activity" beside itself.
func ideActivityScriptPath(envID string) string { return "/w/" + envID + "/activity.js" }

const appActivityScriptPath = httpmw.AppReservedPrefix + "activity.js"

// ActivityScript serves ideactivity.js (GET /w/{id}/activity.js, or
// /__dev8/activity.js on the IDE's own origin).
func (g *Gateway) ActivityScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	http.ServeContent(w, r, "activity.js", time.Time{}, bytes.NewReader(ideActivityScript))
}

// IDEActivity takes a report from ideactivity.js (POST /w/{id}/activity,
// or /__dev8/activity on the IDE's own origin).
func (g *Gateway) IDEActivity(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(ActivityHeader) == "" || !sameOrigin(r) {
		g.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "activity reports come from the IDE page of this server"})
		return
	}
	env := httpmw.Environment(r)
	if err := RequireRunning(env); err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.activity.Touch(r.Context(), env.ID); err != nil {
		g.writeError(w, r, fmt.Errorf("record IDE activity: %w", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sameOrigin reports whether a browser's request came from a page of this
// server: its Origin, when it sends one, names this host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		// Browsers send Origin on every POST fetch; a client without one
		// is not a browser page, so no visitor's cookie rides on it.
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// isWorkbenchPage reports whether the proxied request loads the workbench
// page itself (code-server's root), not an asset or its websocket.
func isWorkbenchPage(out *http.Request) bool {
	return out.Method == http.MethodGet && out.URL.Path == "/" && !httpmw.IsWebsocketHandshake(out)
}

// injectActivityScript adds ideactivity.js (at src) to code-server's
// workbench page. code-server's CSP allows scripts from 'self', which this
// server is on the IDE's origin.
func (g *Gateway) injectActivityScript(resp *http.Response, envID, src string) error {
	if resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		resp.Header.Get("Content-Encoding") != "" {
		return nil
	}
	body := resp.Body
	page, err := io.ReadAll(io.LimitReader(body, maxWorkbenchBytes+1))
	if err != nil {
		body.Close()
		return fmt.Errorf("read workbench page: %w", err)
	}
	if len(page) > maxWorkbenchBytes {
		// Not the page we know: pass it on whole, unchanged.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(page), body), body}
		return nil
	}
	body.Close()
	if i := bytes.LastIndex(page, []byte("</head>")); i >= 0 {
		tag := fmt.Sprintf(`<script src="%s" data-every="%d" defer></script>`,
			html.EscapeString(src), g.ideActivityInterval.Milliseconds())
		page = append(page[:i:i], append([]byte(tag), page[i:]...)...)
	}
	resp.Body = io.NopCloser(bytes.NewReader(page))
	resp.ContentLength = int64(len(page))
	resp.Header.Set("Content-Length", strconv.Itoa(len(page)))
	// Opening the workbench is a person arriving. A failure to record it
	// must not keep them out of their IDE: the next input reports again.
	if err := g.activity.Touch(resp.Request.Context(), envID); err != nil {
		g.log.WarnContext(resp.Request.Context(), "record IDE activity", "environment", envID, "err", err)
	}
	return nil
}
