// Package appauth is how a browser signs in to one workspace app (see
// appurl) without taking its dashboard session there.
//
// The dashboard's session cookie is host-only on the dashboard's host, so a
// browser never sends it to an app's host. Instead the dashboard, which
// knows who is asking, mints a Ticket: a random, one-time secret good for
// one app, for about a minute. The browser carries it to the app's host in
// a redirect; the app's host redeems it (once) and sets its own cookie, a
// Session: signed, host-only, bound to the app, the person and the sign-in
// (dashboard session or API token) the ticket was minted with, and short
// lived. Such a cookie is worth nothing on the dashboard (which never reads
// it) or on another app's host (it names its app).
package appauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"dev8.dev/dev8/internal/appurl"
)

// ParentKind says what kind of sign-in a grant was made with.
type ParentKind string

const (
	// ParentSession: a dashboard session (a browser's cookie, or the
	// secret dev8 login keeps).
	ParentSession ParentKind = "session"
	// ParentToken: an API token.
	ParentToken ParentKind = "token"
)

// Parent is the sign-in a grant was made with: the grant ends with it
// (logout, revocation, expiry).
type Parent struct {
	Kind ParentKind
	ID   string
}

// Grant is what a ticket or an app session stands for: one person, one
// app, through one sign-in.
type Grant struct {
	App    appurl.App
	UserID string
	Parent Parent
	// Path is where a ticket's redemption lands on the app's host (a path
	// with its query, starting with "/"); sessions do not carry it.
	Path string
}

// DefaultTicketTTL is how long a ticket may wait to be redeemed: a
// redirect takes milliseconds; a minute leaves room for a slow network.
const DefaultTicketTTL = time.Minute

// MaxTickets bounds the tickets waiting at once, so a flood of mints
// cannot grow the server's memory: past it, Mint refuses (ErrTooMany) until
// tickets are redeemed or expire.
const MaxTickets = 10000

var (
	// ErrTicket: the ticket is unknown, used already, expired, or for
	// another app.
	ErrTicket = errors.New("the sign-in link has expired or was already used")
	// ErrTooMany: too many tickets wait to be redeemed.
	ErrTooMany = errors.New("too many workspace sign-ins at once; try again in a minute")
)

// ticketPrefix starts every ticket, so secret scanners and people can tell
// one.
const ticketPrefix = "dev8t_"

// Tickets holds the tickets waiting to be redeemed, in memory: a ticket
// lives a minute and a restart only makes the browser ask the dashboard
// for another.
type Tickets struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	waiting map[[sha256.Size]byte]ticket
}

type ticket struct {
	grant   Grant
	expires time.Time
}

// NewTickets returns an empty ticket holder; ttl <= 0 takes
// DefaultTicketTTL, a nil now time.Now.
func NewTickets(ttl time.Duration, now func() time.Time) *Tickets {
	if ttl <= 0 {
		ttl = DefaultTicketTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Tickets{ttl: ttl, now: now, waiting: map[[sha256.Size]byte]ticket{}}
}

// Mint makes a ticket for g and returns it with its expiry. Only its hash
// is kept.
func (t *Tickets) Mint(g Grant) (string, time.Time, error) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	secret := ticketPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	now := t.now()
	expires := now.Add(t.ttl)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.waiting) >= MaxTickets {
		t.sweepLocked(now)
		if len(t.waiting) >= MaxTickets {
			return "", time.Time{}, ErrTooMany
		}
	}
	t.waiting[sha256.Sum256([]byte(secret))] = ticket{grant: g, expires: expires}
	return secret, expires, nil
}

// Redeem takes a ticket for app: it is gone afterwards whatever the
// outcome, so it can never be used twice. A ticket for another app, expired
// or unknown is ErrTicket.
func (t *Tickets) Redeem(secret string, app appurl.App) (Grant, error) {
	if !strings.HasPrefix(secret, ticketPrefix) || len(secret) > 128 {
		return Grant{}, ErrTicket
	}
	key := sha256.Sum256([]byte(secret))
	now := t.now()
	t.mu.Lock()
	tk, ok := t.waiting[key]
	delete(t.waiting, key)
	t.mu.Unlock()
	if !ok || !now.Before(tk.expires) || tk.grant.App != app {
		return Grant{}, ErrTicket
	}
	return tk.grant, nil
}

// Waiting is how many tickets wait to be redeemed (expired ones included
// until they are swept).
func (t *Tickets) Waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.waiting)
}

// Sweep forgets the expired tickets.
func (t *Tickets) Sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(t.now())
}

func (t *Tickets) sweepLocked(now time.Time) {
	for k, tk := range t.waiting {
		if !now.Before(tk.expires) {
			delete(t.waiting, k)
		}
	}
}

// CookieName is the app session's cookie, host-only on the app's host.
const CookieName = "dev8_app_session"

// DefaultSessionTTL is how long an app session lasts after it was last
// renewed; a session in use is renewed (see Sessions.NeedsRenewal), and it
// ends at once with its sign-in either way.
const DefaultSessionTTL = time.Hour

// renewAfter is how old a session's cookie grows before a request renews
// it: requests within it cost no Set-Cookie.
const renewAfter = 5 * time.Minute

// Sessions signs and checks app session cookies. They are stateless: the
// server keeps nothing but the key; what a cookie says is checked against
// the store (its sign-in still valid, its person still allowed) on every
// request by the caller.
type Sessions struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewSessions signs with key (derive it for this purpose alone); ttl <= 0
// takes DefaultSessionTTL, a nil now time.Now.
func NewSessions(key []byte, ttl time.Duration, now func() time.Time) *Sessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Sessions{key: key, ttl: ttl, now: now}
}

// TTL is how long a fresh session lasts.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// Issue returns the cookie value for g (its Path is not kept) and when it
// expires.
func (s *Sessions) Issue(g Grant) (string, time.Time) {
	label, _ := g.App.Label()
	now := s.now()
	expires := now.Add(s.ttl)
	payload := strings.Join([]string{"v1", label, g.UserID, string(g.Parent.Kind), g.Parent.ID,
		strconv.FormatInt(now.Unix(), 10), strconv.FormatInt(expires.Unix(), 10)}, "|")
	enc := base64.RawURLEncoding.EncodeToString([]byte(payload))
	return enc + "." + base64.RawURLEncoding.EncodeToString(s.mac(enc)), expires
}

// Verify reads a cookie value for app: the grant it stands for and when it
// was issued, or false when it is forged, expired or another app's.
func (s *Sessions) Verify(value string, app appurl.App) (Grant, time.Time, bool) {
	enc, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > 1024 {
		return Grant{}, time.Time{}, false
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !hmac.Equal(mac, s.mac(enc)) {
		return Grant{}, time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil {
		return Grant{}, time.Time{}, false
	}
	f := strings.Split(string(raw), "|")
	if len(f) != 7 || f[0] != "v1" {
		return Grant{}, time.Time{}, false
	}
	got, ok := appurl.ParseLabel(f[1])
	issued, err1 := strconv.ParseInt(f[5], 10, 64)
	expires, err2 := strconv.ParseInt(f[6], 10, 64)
	kind := ParentKind(f[3])
	if !ok || got != app || err1 != nil || err2 != nil || f[2] == "" || f[4] == "" ||
		(kind != ParentSession && kind != ParentToken) || !s.now().Before(time.Unix(expires, 0)) {
		return Grant{}, time.Time{}, false
	}
	return Grant{App: got, UserID: f[2], Parent: Parent{Kind: kind, ID: f[4]}}, time.Unix(issued, 0), true
}

// NeedsRenewal reports whether a session issued at issued should get a
// fresh cookie: it is in use, and old enough that renewing is worth a
// Set-Cookie.
func (s *Sessions) NeedsRenewal(issued time.Time) bool { return s.now().Sub(issued) >= renewAfter }

func (s *Sessions) mac(enc string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte("dev8 app session v1\x00" + enc))
	return h.Sum(nil)
}
