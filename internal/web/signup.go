package web

import (
	"context"
	"errors"
	"net/http"
	"time"

	"dev8.dev/dev8/internal/auth"
	"dev8.dev/dev8/internal/signup"
	"dev8.dev/dev8/internal/store"
)

// SignupGate is the server's signup policy (package signup's Gate), which
// the pages ask what to offer: a page never offers to sign up where the
// API would refuse, and an invite link that cannot be used says so at
// once.
type SignupGate interface {
	Policy() signup.Policy
	SelfService(ctx context.Context) (bool, error)
	Invite(ctx context.Context, token, email string) (store.Invite, error)
}

// SetSignup tells the pages the server's signup policy. Without it they
// offer signing up to everyone.
func (s *Site) SetSignup(g SignupGate) { s.signup = g }

// invitePage is the invite the sign-up page applies.
type invitePage struct {
	Token string
	// Email, when set, is the only address the invite is for: the page
	// fills it in and does not let it be changed.
	Email     string
	Role      string
	ExpiresAt time.Time
}

// problemPage is what the problem page says.
type problemPage struct {
	Title, Details string
}

// addSignup fills in what a page says about signing up: the policy, and,
// for a visitor who is not signed in, whether to offer creating an account.
func (s *Site) addSignup(r *http.Request, data *pageData) {
	if s.signup == nil {
		data.SignupOpen, data.SignupPolicy = true, string(signup.Open)
		return
	}
	data.SignupPolicy = string(s.signup.Policy())
	if data.User != nil {
		return
	}
	open, err := s.signup.SelfService(r.Context())
	if err != nil {
		// Not offering is the safe side; the API decides anyway.
		s.log.WarnContext(r.Context(), "signup policy", "err", err)
	}
	data.SignupOpen = open
}

// signupPage is the sign-up page: with ?invite=, the invite applied (or a
// page saying why it cannot be used); without, the form where the policy
// lets anyone sign up, else a page that says how accounts are made here.
func (s *Site) signupPage(w http.ResponseWriter, r *http.Request) {
	data := s.newPageData(r, "signup", "Create your account")
	if r.URL.Query().Has("invite") && s.signup != nil {
		token := r.URL.Query().Get("invite")
		inv, err := s.signup.Invite(r.Context(), token, "")
		var invErr *signup.InviteError
		switch {
		case errors.As(err, &invErr):
			status := http.StatusGone
			if invErr.Reason == signup.InviteUnknown {
				status = http.StatusNotFound
			}
			s.Problem(w, r, status, "This invite cannot be used", capitalise(invErr.Error())+". Ask whoever sent it for a new invite.")
			return
		case err != nil:
			s.log.ErrorContext(r.Context(), "look up invite", "err", err)
			s.Problem(w, r, http.StatusInternalServerError, "The invite could not be checked", "Something went wrong on the server; try the link again in a moment.")
			return
		}
		data.Invite = &invitePage{Token: token, Email: inv.Email, Role: string(inv.Role), ExpiresAt: inv.ExpiresAt}
		data.Title = "Accept your invite"
		data.noReferrer = true // the link's token must not travel in a Referer
		s.render(w, r, http.StatusOK, "signup", data)
		return
	}
	status := http.StatusOK
	if !data.SignupOpen && data.User == nil {
		// The page says how accounts are made here instead of a form
		// the API would refuse.
		status = http.StatusForbidden
		data.Title = "Sign-up is by invitation"
	}
	s.render(w, r, status, "signup", data)
}

// Problem renders the page that says why what the browser navigated to
// cannot be done (httpmw.Pages): a sign-in that failed, a link that no
// longer works.
func (s *Site) Problem(w http.ResponseWriter, r *http.Request, status int, title, details string) {
	data := pageData{Title: title, Page: "problem", Year: time.Now().Year(), Script: "js/problem.js",
		Problem: &problemPage{Title: title, Details: details}}
	if u, ok := auth.UserFrom(r.Context()); ok {
		data.User = &u
	}
	s.addSignup(r, &data)
	s.render(w, r, status, "problem", data)
}

// capitalise starts s with a capital letter (ASCII: the messages are ours).
func capitalise(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
