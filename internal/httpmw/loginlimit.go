package httpmw

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/ratelimit"
	"dev8.dev/dev8/internal/store"
)

// ErrLoginThrottleUnavailable refuses a login whose throttle's shared
// failures could not be read (see Throttles.LoginLocked).
var ErrLoginThrottleUnavailable = &httpapi.Error{Status: http.StatusServiceUnavailable, Code: httpapi.CodeNotReady,
	Message: "Sign-in is unavailable", Details: "the server could not check its login throttle; try again shortly"}

// failureWriteTimeout bounds a shared failure's write, which outlives the
// request (see loginLimit.fail).
const failureWriteTimeout = 10 * time.Second

// loginLimit is one of the login throttles. Its failures are kept in the
// shared store when there is one, else in memory. With a shared store the
// memory holds only the failures the store could not take, and both are
// asked before a login: a store that answers reads but fails writes (a
// database gone read-only) still leaves every replica its own count, the
// bound of a server alone, rather than none.
type loginLimit struct {
	name   string
	memory *ratelimit.Backoff
	shared *ratelimit.SharedBackoff // nil: memory only
	log    *slog.Logger
}

func newLoginLimit(name string, cfg ratelimit.BackoffConfig, shared ratelimit.FailureStore, log *slog.Logger) *loginLimit {
	l := &loginLimit{name: name, memory: ratelimit.NewBackoff(cfg), log: log}
	if shared != nil {
		l.shared = ratelimit.NewSharedBackoff(cfg, shared)
	}
	return l
}

// sharedKey is key in the store, which the three limits share: each
// limit's keys are its own, whatever they look like.
func (l *loginLimit) sharedKey(key string) string { return l.name + "\x00" + key }

// refuse is the longer lock of the two counts, and whether either lock is
// refused for the first time.
func (l *loginLimit) refuse(ctx context.Context, key string) (time.Duration, bool, error) {
	retry, first := l.memory.Refuse(key)
	if l.shared == nil {
		return retry, first, nil
	}
	sharedRetry, sharedFirst, err := l.shared.Refuse(ctx, l.sharedKey(key))
	if err != nil {
		return 0, false, err
	}
	return max(retry, sharedRetry), first || sharedFirst, nil
}

// fail counts a failure, in the shared store when there is one. The write
// is not cancelled with the request: a guesser must not save guesses by
// hanging up before it is done. One the store cannot take is counted in
// memory instead.
func (l *loginLimit) fail(ctx context.Context, key string) {
	if l.shared != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureWriteTimeout)
		defer cancel()
		_, err := l.shared.Fail(ctx, l.sharedKey(key))
		if err == nil {
			return
		}
		l.log.WarnContext(ctx, "login failure not shared with the other replicas; counted by this one alone", "limit", l.name, "err", err)
	}
	l.memory.Fail(key)
}

// reset forgets key's failures in both counts. A shared record that
// cannot be deleted is logged and left: it can only lock the account
// sooner, never let a guesser through.
func (l *loginLimit) reset(ctx context.Context, key string) {
	l.memory.Reset(key)
	if l.shared == nil {
		return
	}
	if err := l.shared.Reset(ctx, l.sharedKey(key)); err != nil {
		l.log.WarnContext(ctx, "login failures not reset in the shared store", "limit", l.name, "err", err)
	}
}

// LoginFailureStore keeps the login throttles' failures in the database
// every replica uses (store.DB).
type LoginFailureStore interface {
	LoginFailure(ctx context.Context, key string) (store.LoginFailure, error)
	UpdateLoginFailure(ctx context.Context, key string, change func(*store.LoginFailure)) error
	DeleteLoginFailure(ctx context.Context, key string) error
}

// StoredLoginFailures is the login throttles' FailureStore in s: with it
// (NewThrottles' shared) replicas on one database share their login
// throttling.
func StoredLoginFailures(s LoginFailureStore) ratelimit.FailureStore { return storedFailures{s} }

type storedFailures struct{ s LoginFailureStore }

func fromStored(f store.LoginFailure) ratelimit.Failures {
	return ratelimit.Failures{Count: f.Count, Last: f.LastFailure, LockedUntil: f.LockedUntil, Reported: f.Reported}
}

func (s storedFailures) Failures(ctx context.Context, key string) (ratelimit.Failures, error) {
	f, err := s.s.LoginFailure(ctx, key)
	return fromStored(f), err
}

func (s storedFailures) UpdateFailures(ctx context.Context, key string, window time.Duration, change func(*ratelimit.Failures)) error {
	return s.s.UpdateLoginFailure(ctx, key, func(sf *store.LoginFailure) {
		f := fromStored(*sf)
		change(&f)
		if f.IsZero() {
			*sf = store.LoginFailure{}
			return
		}
		*sf = store.LoginFailure{Count: f.Count, LastFailure: f.Last, LockedUntil: f.LockedUntil, Reported: f.Reported, Expires: f.Expires(window)}
	})
}

func (s storedFailures) DeleteFailures(ctx context.Context, key string) error {
	return s.s.DeleteLoginFailure(ctx, key)
}
