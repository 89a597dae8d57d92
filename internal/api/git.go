package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
)

type gitJSON struct {
	Name             string     `json:"name"`
	Email            string     `json:"email"`
	GitHubTokenSet   bool       `json:"github_token_set"`
	GitHubTokenSetAt *time.Time `json:"github_token_set_at"`
	UpdatedAt        *time.Time `json:"updated_at"`
}

func toGitJSON(g store.GitSettings) gitJSON {
	j := gitJSON{Name: g.Name, Email: g.Email, GitHubTokenSet: g.GitHubToken != nil, GitHubTokenSetAt: g.GitHubTokenSetAt}
	if !g.UpdatedAt.IsZero() {
		t := g.UpdatedAt
		j.UpdatedAt = &t
	}
	return j
}

type putGitRequest struct {
	Name        *string `json:"name"`
	Email       *string `json:"email"`
	GitHubToken *string `json:"github_token"`
}

func validateGitRequest(req *putGitRequest) error {
	if req.Name == nil && req.Email == nil && req.GitHubToken == nil {
		return httpapi.Validation("send at least one of name, email, github_token")
	}
	if req.Name != nil {
		*req.Name = strings.TrimSpace(*req.Name)
		if err := httpapi.CheckLabel("name", *req.Name, maxGitNameLength); err != nil {
			return err
		}
		if strings.ContainsAny(*req.Name, "<>") {
			return httpapi.Validation("name: must not contain < or >")
		}
	}
	if req.Email != nil {
		e := strings.TrimSpace(*req.Email)
		*req.Email = e
		switch {
		case len(e) > maxGitEmailLength:
			return httpapi.Validation(fmt.Sprintf("email: at most %d characters", maxGitEmailLength))
		case e != "" && (!strings.Contains(e, "@") || strings.ContainsAny(e, "<> \t") || strings.IndexFunc(e, unicode.IsControl) >= 0):
			return httpapi.Validation("email: must be an email address such as ada@example.com (or empty to clear it)")
		}
	}
	if req.GitHubToken != nil {
		t := *req.GitHubToken
		switch {
		case t == "":
			return httpapi.Validation("github_token: must not be empty; DELETE /api/v1/git/github-token removes the token")
		case len(t) > maxGitHubTokenBytes:
			return httpapi.Validation(fmt.Sprintf("github_token: at most %d bytes", maxGitHubTokenBytes))
		case strings.IndexFunc(t, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			return httpapi.Validation("github_token: must be printable ASCII without spaces")
		}
	}
	return nil
}

func (a *API) getGit(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	g, err := st.GetGitSettings(r.Context(), caller.ID)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("get git settings: %w", err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"git": toGitJSON(g)})
}

// putGit changes the fields the request names; the others keep their
// values. The token is write-only.
func (a *API) putGit(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, box, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	var req putGitRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := validateGitRequest(&req); err != nil {
		a.writeError(w, r, err)
		return
	}
	changed := []string{}
	g, err := st.UpdateGitSettings(r.Context(), caller.ID, func(g *store.GitSettings) error {
		if req.Name != nil {
			g.Name = *req.Name
			changed = append(changed, "name")
		}
		if req.Email != nil {
			g.Email = *req.Email
			changed = append(changed, "email")
		}
		if req.GitHubToken != nil {
			g.GitHubToken = box.Seal([]byte(*req.GitHubToken), githubTokenAAD(caller.ID))
			changed = append(changed, "github_token")
		}
		return nil
	})
	if err != nil {
		a.writeError(w, r, fmt.Errorf("update git settings: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "git settings updated", "user", caller.ID, "fields", changed)
	a.audit(r, "git.update", "user", caller.ID, true, map[string]any{"fields": changed})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"git": toGitJSON(g)})
}

func (a *API) deleteGitHubToken(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	st, _, err := a.secretsReady()
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	errNoToken := httpapi.NotFound("GitHub token")
	_, err = st.UpdateGitSettings(r.Context(), caller.ID, func(g *store.GitSettings) error {
		if g.GitHubToken == nil {
			return errNoToken
		}
		g.GitHubToken = nil
		return nil
	})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "github token removed", "user", caller.ID)
	a.audit(r, "git.github_token.delete", "user", caller.ID, true, nil)
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"message": "GitHub token removed"})
}

// ---- the supervisor's manifest ----
