package httpmw

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
)

// Stream caps. A person's dashboard holds one event stream per tab, a VS
// Code tab two or three websockets, a terminal one, and every connection a
// forwarded port carries (a browser opens six at once to a dev server) one
// more, so 64 leaves room for a busy day while one account cannot take the
// server's file descriptors; 1024 in all keeps the server inside the usual
// limit of open files with room for ordinary requests.
const (
	DefaultStreamsPerUser = 64
	DefaultStreamsTotal   = 1024
)

// StreamLimits caps the long-lived connections people hold open at once:
// event streams and websockets (terminals, SSH, port forwarding, the IDE's
// websockets). Zero fields take the defaults; a negative one is no cap.
// Workspaces' own tunnels are not counted: each workspace has one.
type StreamLimits struct {
	PerUser int
	Total   int
}

// Streams counts the open streams and refuses one over a cap.
type Streams struct {
	perUser, total int // 0: no cap
	log            *slog.Logger

	mu     sync.Mutex
	open   int
	byUser map[string]int
}

// NewStreams returns the counter for limits.
func NewStreams(limits StreamLimits, log *slog.Logger) *Streams {
	limit := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	if log == nil {
		log = slog.Default()
	}
	return &Streams{perUser: limit(limits.PerUser, DefaultStreamsPerUser), total: limit(limits.Total, DefaultStreamsTotal), log: log, byUser: map[string]int{}}
}

// Hold admits a stream for the authenticated user (it runs after
// authentication, before the handler upgrades or starts streaming) and
// holds its slot until the handler returns, which for a stream is when it
// closes. Over a cap the answer is 429 TOO_MANY_STREAMS, before anything
// is opened.
func (s *Streams) Hold(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := auth.UserFrom(r.Context())
		if !ok {
			// Only users' streams are counted; the routes' own
			// middleware decides who else may call them.
			next.ServeHTTP(w, r)
			return
		}
		if err := s.acquire(u.ID); err != nil {
			httpapi.WriteError(s.log, w, r, err)
			return
		}
		defer s.release(u.ID)
		next.ServeHTTP(w, r)
	})
}

// HoldUpgrades is Hold for the requests that switch protocols only: the
// IDE's websockets, among its ordinary requests.
func (s *Streams) HoldUpgrades(next http.Handler) http.Handler {
	held := s.Hold(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isUpgrade(r) {
			held.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Open is how many streams are open now, in all and for user.
func (s *Streams) Open(user string) (total, ofUser int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open, s.byUser[user]
}

func (s *Streams) acquire(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.perUser > 0 && s.byUser[user] >= s.perUser:
		return tooManyStreams(fmt.Sprintf("this account has %d streams open (terminals, SSH and port-forward connections, IDE websockets, event streams), the most it may; close one and retry (--max-streams-per-user)", s.perUser))
	case s.total > 0 && s.open >= s.total:
		return tooManyStreams(fmt.Sprintf("the server has %d streams open, the most it takes; retry later (--max-streams)", s.total))
	}
	s.open++
	s.byUser[user]++
	return nil
}

func (s *Streams) release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open--
	if s.byUser[user]--; s.byUser[user] <= 0 {
		delete(s.byUser, user)
	}
}

func tooManyStreams(details string) *httpapi.Error {
	return &httpapi.Error{Status: http.StatusTooManyRequests, Code: httpapi.CodeTooManyStreams, Message: "Too many open streams", Details: details}
}
