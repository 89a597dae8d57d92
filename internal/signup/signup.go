// Package signup is the server's signup policy: who may create an account
// (anyone, people an admin invited, or nobody new), which email domains may
// sign up by themselves through OAuth, and when an invite may be used. The
// API enforces it; the dashboard asks it what to offer. Under every policy
// the first user of an empty installation may sign up, and becomes its
// admin.
package signup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"dev8.dev/dev8/internal/store"
)

// Policy is who may create an account.
type Policy string

const (
	// Open: anyone who reaches the server may sign up.
	Open Policy = "open"
	// Invite: after the first user, accounts come from invites an admin
	// made, or from OAuth sign-ins whose verified email is in an allowed
	// domain.
	Invite Policy = "invite"
	// Closed: after the first user, accounts come only from invites an
	// admin made (an invite is how an admin creates an account); nobody
	// signs up by themselves, whatever their domain.
	Closed Policy = "closed"
)

// DefaultPolicy is the policy of a server configured with none.
const DefaultPolicy = Invite

// Policies lists every policy, most permissive first.
var Policies = []Policy{Open, Invite, Closed}

// ParsePolicy reads a policy name, in any case.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies {
		if strings.EqualFold(strings.TrimSpace(s), string(p)) {
			return p, nil
		}
	}
	return "", fmt.Errorf("signup policy %q: want open, invite or closed", s)
}

var (
	// ErrSignupClosed refuses a signup without an invite under Closed.
	ErrSignupClosed = errors.New("signup is closed on this server: accounts are made by invitation of an admin")
	// ErrInviteRequired refuses a signup without an invite under Invite.
	ErrInviteRequired = errors.New("signup on this server needs an invite from an admin")
)

// InviteReason says why an invite cannot be used.
type InviteReason string

const (
	InviteUnknown InviteReason = "unknown" // no such invite
	InviteUsed    InviteReason = "used"
	InviteRevoked InviteReason = "revoked"
	InviteExpired InviteReason = "expired"
	// InviteOtherEmail: the invite is for another email address.
	InviteOtherEmail InviteReason = "email"
)

// InviteError refuses an invite that cannot be used.
type InviteError struct {
	Reason InviteReason
}

func (e *InviteError) Error() string {
	switch e.Reason {
	case InviteUsed:
		return "this invite was used already: each invite makes one account"
	case InviteRevoked:
		return "this invite was revoked by an admin"
	case InviteExpired:
		return "this invite has expired"
	case InviteOtherEmail:
		return "this invite is for another email address"
	}
	return "there is no such invite: check that the whole link was copied"
}

// Store is what the policy reads.
type Store interface {
	HasUsers(ctx context.Context) (bool, error)
	GetInviteByHash(ctx context.Context, hash []byte) (store.Invite, error)
}

// Config configures a Gate.
type Config struct {
	// Policy (empty: DefaultPolicy).
	Policy Policy
	// AllowedDomains are the email domains whose people may create an
	// account by signing in with an OAuth provider that vouches for their
	// address, under Invite (see ParseDomains). Password signups never
	// count: their address is not verified.
	AllowedDomains []string
	Store          Store
	// Now is the clock invites expire by (default time.Now).
	Now func() time.Time
}

// Gate answers who may sign up.
type Gate struct {
	policy  Policy
	domains []string
	store   Store
	now     func() time.Time
}

// New returns the gate cfg describes.
func New(cfg Config) *Gate {
	if cfg.Policy == "" {
		cfg.Policy = DefaultPolicy
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Gate{policy: cfg.Policy, domains: slices.Clone(cfg.AllowedDomains), store: cfg.Store, now: cfg.Now}
}

// Policy is the gate's policy.
func (g *Gate) Policy() Policy { return g.policy }

// SelfService reports whether someone may create an account now without an
// invite: the policy is Open, or the installation has no user yet (the
// first one becomes its admin).
func (g *Gate) SelfService(ctx context.Context) (bool, error) {
	if g.policy == Open {
		return true, nil
	}
	has, err := g.store.HasUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("signup policy: %w", err)
	}
	return !has, nil
}

// Refusal is the error for a signup without an invite that SelfService
// does not allow.
func (g *Gate) Refusal() error {
	if g.policy == Closed {
		return ErrSignupClosed
	}
	return ErrInviteRequired
}

// DomainAllowed reports whether an OAuth sign-in with this verified email
// may create an account by itself: under Invite, when its domain is one of
// AllowedDomains. (Under Open anyone may; under Closed no one.)
func (g *Gate) DomainAllowed(email string) bool {
	if g.policy != Invite {
		return false
	}
	at := strings.LastIndexByte(email, '@')
	return at >= 0 && slices.Contains(g.domains, strings.ToLower(email[at+1:]))
}

// Invite returns the invite token names if it may be used now, by email
// (empty: by whichever address, as the sign-up page asks before anyone
// typed one); else an *InviteError.
func (g *Gate) Invite(ctx context.Context, token, email string) (store.Invite, error) {
	hash, ok := HashInviteToken(token)
	if !ok {
		return store.Invite{}, &InviteError{Reason: InviteUnknown}
	}
	inv, err := g.store.GetInviteByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return store.Invite{}, &InviteError{Reason: InviteUnknown}
	}
	if err != nil {
		return store.Invite{}, fmt.Errorf("look up invite: %w", err)
	}
	return inv, g.Usable(email)(inv)
}

// Usable is the check an invite must pass to be used by email (empty: by
// whichever address) now: pending, and for that address if it names one.
// store.DB.CreateInvitedUser runs it inside its transaction.
func (g *Gate) Usable(email string) func(store.Invite) error {
	return func(inv store.Invite) error {
		switch inv.State(g.now()) {
		case store.InviteUsed:
			return &InviteError{Reason: InviteUsed}
		case store.InviteRevoked:
			return &InviteError{Reason: InviteRevoked}
		case store.InviteExpired:
			return &InviteError{Reason: InviteExpired}
		}
		if email != "" && inv.Email != "" && !strings.EqualFold(inv.Email, email) {
			return &InviteError{Reason: InviteOtherEmail}
		}
		return nil
	}
}
