// Package auth holds Dev8's credentials: password hashing, API tokens, and
// the caller identity that authenticated requests carry.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"dev8.dev/dev8/internal/store"
)

// DefaultBcryptCost is above bcrypt's default (10) so that a stolen hash
// costs an attacker more; a login still takes about 125 ms on 2 cores.
// MinBcryptCost is the floor any configuration may choose.
const (
	DefaultBcryptCost = 11
	MinBcryptCost     = 10
)

// MinPasswordLength and MaxPasswordLength bound passwords. bcrypt ignores
// bytes past 72, so longer passwords are refused rather than silently cut.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 72
)

// DefaultTokenLifetime and DefaultTokenMaxLifetime are the lifetimes of API
// tokens made with POST /tokens when the configuration names none.
const (
	DefaultTokenLifetime    = 30 * 24 * time.Hour
	DefaultTokenMaxLifetime = 365 * 24 * time.Hour
)

// ErrBadCredentials is the one answer to every failed login, so that a
// caller cannot tell a wrong password from an unknown email.
var ErrBadCredentials = errors.New("invalid email or password")

// Passwords hashes and checks passwords with bcrypt at one cost.
type Passwords struct {
	cost int
	// dummy is compared against when an account has no password (or does
	// not exist), so a failed login takes as long either way. Made on first
	// use: a bcrypt at start-up would slow every dev8 process, supervisors
	// included.
	dummy func() []byte
}

// NewPasswords returns a Passwords at cost, raised to MinBcryptCost if lower.
func NewPasswords(cost int) *Passwords {
	cost = max(cost, MinBcryptCost)
	return &Passwords{
		cost: cost,
		dummy: sync.OnceValue(func() []byte {
			h, _ := bcrypt.GenerateFromPassword([]byte("dev8-timing-equaliser"), cost)
			return h
		}),
	}
}

// Hash returns the bcrypt hash of password.
func (p *Passwords) Hash(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Check reports whether password matches hash. An empty hash (no password
// set, or no such account) never matches but costs the same bcrypt time.
func (p *Passwords) Check(hash, password string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(p.dummy(), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// TokenPrefix starts every API token so they are recognisable in logs and
// by secret scanners.
const TokenPrefix = "dev8_"

// NewToken returns a fresh API token secret and the hash to store for it.
func NewToken() (secret string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate token: %w", err)
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret), nil
}

// HashToken is how tokens are stored and looked up. Tokens carry 256 random
// bits, so a fast hash is enough: no one can guess them by brute force.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// BearerToken extracts the token from an Authorization header value.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

type ctxKey struct{}

// WithUser returns ctx carrying the authenticated user.
func WithUser(ctx context.Context, u store.User) context.Context {
	return context.WithValue(ctx, ctxKey{}, u)
}

// UserFrom returns the authenticated user, if any.
func UserFrom(ctx context.Context) (store.User, bool) {
	u, ok := ctx.Value(ctxKey{}).(store.User)
	return u, ok
}

// CanAccess reports whether u may see and act on an object owned by ownerID.
// Everyone else gets the same answer as for a missing object.
func CanAccess(u store.User, ownerID string) bool {
	if u.ID == "" {
		return false
	}
	return u.Role == store.RoleAdmin || u.ID == ownerID
}
