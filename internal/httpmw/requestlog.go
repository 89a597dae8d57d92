package httpmw

import (
	"context"
	"log/slog"

	"github.com/go-chi/chi/v5/middleware"
)

// LogRequestIDs wraps h so that every record logged with a request's
// context (a.log.WarnContext(r.Context(), ...), and the packages the
// handlers call with it) carries the request's id as request_id: the id
// the response's X-Request-Id header gave the client. A record that names
// its request_id itself keeps it as it is. The server wraps its logger in
// it once, so no log call has to remember the id.
func LogRequestIDs(h slog.Handler) slog.Handler {
	if _, ok := h.(requestIDHandler); ok {
		return h
	}
	return requestIDHandler{h}
}

type requestIDHandler struct{ slog.Handler }

const requestIDKey = "request_id"

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := middleware.GetReqID(ctx); id != "" && !hasAttr(r, requestIDKey) {
		r = r.Clone()
		r.AddAttrs(slog.String(requestIDKey, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
