package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"dev8.dev/dev8/internal/audit"
	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

const (
	defaultAuditLimit = 50
	maxAuditLimit     = 500
)

// audit records what the request did, best-effort (audit.Recorder): a
// failed insert is logged and never fails the request. The actor is the
// authenticated user or agent; on public routes (signup, login) detail and
// objID say who.
func (a *API) audit(r *http.Request, action, objType, objID string, success bool, detail map[string]any) {
	a.auditAs(r, "", action, objType, objID, success, detail)
}

// auditAs is audit with the acting user named explicitly (public routes,
// where no user is in the context yet).
func (a *API) auditAs(r *http.Request, actorID, action, objType, objID string, success bool, detail map[string]any) {
	e := audit.Event{
		Actor:     audit.User(actorID),
		Action:    action,
		Target:    audit.Target{Type: objType, ID: objID},
		RequestID: middleware.GetReqID(r.Context()),
		Detail:    detail,
		Success:   success,
	}
	if ip := a.proxies.ClientAddr(r); ip.IsValid() {
		e.IP = ip.String()
	}
	if u, ok := auth.UserFrom(r.Context()); ok {
		e.Actor = audit.User(u.ID)
	} else if envID, ok := auth.AgentFrom(r.Context()); ok {
		e.Actor.Kind = store.ActorAgent
		if e.Detail == nil {
			e.Detail = map[string]any{}
		}
		e.Detail["agent_environment_id"] = envID
	}
	a.auditLog.Record(r.Context(), e)
}

// toAuditEventJSON renders e as the API shows it (the sdk's AuditEvent).
func toAuditEventJSON(e store.AuditEvent) sdk.AuditEvent {
	var actor *string
	if e.ActorUserID != "" {
		actor = &e.ActorUserID
	}
	return sdk.AuditEvent{
		ID: e.ID, CreatedAt: e.CreatedAt, ActorUserID: actor, ActorKind: e.ActorKind,
		Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID, IP: e.IP, RequestID: e.RequestID,
		Detail: e.Detail, Success: e.Success,
	}
}

func timeParam(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, httpapi.Validation(fmt.Sprintf("%s: must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name))
	}
	return t, nil
}

// listAudit is the audit log, newest first, for admins (RequireAdmin).
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AuditFilter{ActorUserID: q.Get("actor"), Action: q.Get("action"), ObjectType: q.Get("object_type"), ObjectID: q.Get("object_id")}
	var err error
	if f.Since, err = timeParam(q.Get("since"), "since"); err != nil {
		a.writeError(w, r, err)
		return
	}
	if f.Until, err = timeParam(q.Get("until"), "until"); err != nil {
		a.writeError(w, r, err)
		return
	}
	if f.Limit, err = httpapi.IntParam(q.Get("limit"), "limit", defaultAuditLimit, 1, maxAuditLimit); err != nil {
		a.writeError(w, r, err)
		return
	}
	if f.Offset, err = httpapi.IntParam(q.Get("offset"), "offset", 0, 0, 1<<31-1); err != nil {
		a.writeError(w, r, err)
		return
	}
	events, total, err := a.store.ListAuditEvents(r.Context(), f)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list audit events: %w", err))
		return
	}
	out := make([]sdk.AuditEvent, len(events))
	for i, e := range events {
		out[i] = toAuditEventJSON(e)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": out, "total": total})
}
