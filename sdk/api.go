package sdk

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signup creates an account. The first account on a server is its admin.
func (c *Client) Signup(ctx context.Context, email, password, name string) (*User, error) {
	var out struct {
		User User `json:"user"`
	}
	body := map[string]string{"email": email, "password": password, "name": name}
	if err := c.do(ctx, "POST", "/auth/signup", nil, body, &out); err != nil {
		return nil, err
	}
	return &out.User, nil
}

// Login exchanges an email and password for a bearer token. Use it with
// New(baseURL, token).
func (c *Client) Login(ctx context.Context, email, password string) (token string, user *User, err error) {
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		User      User      `json:"user"`
	}
	body := map[string]string{"email": email, "password": password}
	if err := c.do(ctx, "POST", "/auth/login", nil, body, &out); err != nil {
		return "", nil, err
	}
	if out.Token == "" {
		return "", nil, fmt.Errorf("login: the server answered without a token")
	}
	return out.Token, &out.User, nil
}

// Me returns the user the token belongs to.
func (c *Client) Me(ctx context.Context) (*User, error) {
	var out struct {
		User User `json:"user"`
	}
	if err := c.do(ctx, "GET", "/auth/me", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.User, nil
}

// Templates lists the catalog's templates.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	var out struct {
		Templates []Template `json:"templates"`
	}
	if err := c.do(ctx, "GET", "/templates", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Templates, nil
}

// InstanceTypes lists the catalog's sizes new environments may use.
func (c *Client) InstanceTypes(ctx context.Context) ([]InstanceType, error) {
	return c.listInstanceTypes(ctx, nil)
}

// AllInstanceTypes lists every instance type, retired ones too (admins).
func (c *Client) AllInstanceTypes(ctx context.Context) ([]InstanceType, error) {
	return c.listInstanceTypes(ctx, url.Values{"all": {"true"}})
}

func (c *Client) listInstanceTypes(ctx context.Context, q url.Values) ([]InstanceType, error) {
	var out struct {
		InstanceTypes []InstanceType `json:"instance_types"`
	}
	if err := c.do(ctx, "GET", "/instance-types", q, nil, &out); err != nil {
		return nil, err
	}
	return out.InstanceTypes, nil
}

// CreateInstanceType adds an instance type (admins).
func (c *Client) CreateInstanceType(ctx context.Context, req CreateInstanceTypeRequest) (*InstanceType, error) {
	var out struct {
		InstanceType InstanceType `json:"instance_type"`
	}
	if err := c.do(ctx, "POST", "/instance-types", nil, req, &out); err != nil {
		return nil, err
	}
	return &out.InstanceType, nil
}

// UpdateInstanceType edits, retires (IsActive false) or brings back an
// instance type (admins).
func (c *Client) UpdateInstanceType(ctx context.Context, name string, req UpdateInstanceTypeRequest) (*InstanceType, error) {
	var out struct {
		InstanceType InstanceType `json:"instance_type"`
	}
	if err := c.do(ctx, "PATCH", "/instance-types/"+url.PathEscape(name), nil, req, &out); err != nil {
		return nil, err
	}
	return &out.InstanceType, nil
}

// ListEnvironments returns one page of the caller's environments (or, for
// admins, everyone's with All or UserID).
func (c *Client) ListEnvironments(ctx context.Context, f EnvironmentFilter) (*EnvironmentList, error) {
	q := url.Values{}
	if len(f.Statuses) > 0 {
		s := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			s[i] = string(st)
		}
		q.Set("status", strings.Join(s, ","))
	}
	if f.All {
		q.Set("all", "true")
	}
	if f.UserID != "" {
		q.Set("user_id", f.UserID)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var out EnvironmentList
	if err := c.do(ctx, "GET", "/environments", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// maxPageSize is the API's largest page.
const maxPageSize = 100

// AllEnvironments lists every environment matching f, fetching page after
// page (f.Limit and f.Offset are ignored). Environments created or deleted
// while it pages may be missed or seen twice; duplicates are dropped.
func (c *Client) AllEnvironments(ctx context.Context, f EnvironmentFilter) ([]Environment, error) {
	var all []Environment
	seen := map[string]bool{}
	f.Limit, f.Offset = maxPageSize, 0
	for {
		page, err := c.ListEnvironments(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, e := range page.Environments {
			if !seen[e.ID] {
				seen[e.ID] = true
				all = append(all, e)
			}
		}
		f.Offset += len(page.Environments)
		if len(page.Environments) == 0 || f.Offset >= page.Total {
			return all, nil
		}
	}
}

// GetEnvironment returns one environment by id.
func (c *Client) GetEnvironment(ctx context.Context, id string) (*Environment, error) {
	var out struct {
		Environment Environment `json:"environment"`
	}
	if err := c.do(ctx, "GET", envPath(id, ""), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Environment, nil
}

// EnvironmentNotFoundError is FindEnvironment finding nothing by that name
// or id.
type EnvironmentNotFoundError struct{ Name string }

func (e *EnvironmentNotFoundError) Error() string {
	return fmt.Sprintf("environment %q not found", e.Name)
}

// FindEnvironment resolves an environment by id or name among the caller's
// environments: an argument starting with "env_" that is an id the caller
// can see is that environment; anything else is matched against the names
// of the caller's environments. Nothing found is *EnvironmentNotFoundError.
func (c *Client) FindEnvironment(ctx context.Context, nameOrID string) (*Environment, error) {
	if strings.HasPrefix(nameOrID, "env_") {
		env, err := c.GetEnvironment(ctx, nameOrID)
		if err == nil {
			return env, nil
		}
		if !IsNotFound(err) {
			return nil, err
		}
	}
	envs, err := c.AllEnvironments(ctx, EnvironmentFilter{})
	if err != nil {
		return nil, err
	}
	var match *Environment
	for i := range envs {
		e := &envs[i]
		if e.Name != nameOrID {
			continue
		}
		// A name is unique among live environments; one being deleted may
		// share it with its successor, which is the one meant.
		if match == nil || match.Status == StatusDeleting && e.Status != StatusDeleting {
			match = e
		}
	}
	if match == nil {
		return nil, &EnvironmentNotFoundError{Name: nameOrID}
	}
	return match, nil
}

// CreateEnvironment asks for a new environment. It returns at once with the
// environment in CREATING; WaitForStatus follows it to RUNNING.
func (c *Client) CreateEnvironment(ctx context.Context, req CreateEnvironmentRequest) (*Environment, error) {
	var out struct {
		Environment Environment `json:"environment"`
	}
	if err := c.do(ctx, "POST", "/environments", nil, req, &out); err != nil {
		return nil, err
	}
	return &out.Environment, nil
}

// Start asks for the environment to start (idempotent while it runs or
// starts). The work goes on in the background: WaitForStatus follows it.
func (c *Client) Start(ctx context.Context, id string) (*ActionResult, error) {
	return c.action(ctx, "POST", envPath(id, "/start"))
}

// Stop asks for the environment to stop (idempotent while it is stopped or
// stopping).
func (c *Client) Stop(ctx context.Context, id string) (*ActionResult, error) {
	return c.action(ctx, "POST", envPath(id, "/stop"))
}

// Delete asks for the environment and its files to be removed (allowed from
// every status). WaitForDeleted follows it until it is gone.
func (c *Client) Delete(ctx context.Context, id string) (*ActionResult, error) {
	return c.action(ctx, "DELETE", envPath(id, ""))
}

// ReportActivity marks the environment as used now, which holds off the
// idle auto-stop.
func (c *Client) ReportActivity(ctx context.Context, id string) error {
	return c.do(ctx, "POST", envPath(id, "/activity"), nil, nil, nil)
}

func (c *Client) action(ctx context.Context, method, path string) (*ActionResult, error) {
	var out ActionResult
	if err := c.do(ctx, method, path, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func envPath(id, suffix string) string {
	return "/environments/" + url.PathEscape(id) + suffix
}
