package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PollInterval is how often Watch, WaitForStatus and WaitForDeleted ask for
// the environment.
const PollInterval = 250 * time.Millisecond

// EnvironmentError is an environment that landed in ERROR while it was
// being waited for.
type EnvironmentError struct {
	Environment Environment
}

func (e *EnvironmentError) Error() string {
	reason := e.Environment.StatusReason
	if reason == "" {
		reason = "no reason given"
	}
	return fmt.Sprintf("environment %q failed: %s", e.Environment.Name, reason)
}

// WatchRetryFor is how long Watch rides out a server it cannot reach or that
// answers 5xx (a restart, say) before giving up.
const WatchRetryFor = 30 * time.Second

// Watch polls the environment every PollInterval and calls fn with it the
// first time and whenever its status or status reason changes, until fn
// returns true; Watch then returns that environment. It also returns when
// ctx ends, when the API refuses the GET (an environment that is gone is an
// *Error with Code CodeNotFound), or when the server has been unreachable
// or failing for WatchRetryFor.
func (c *Client) Watch(ctx context.Context, id string, fn func(Environment) (done bool)) (*Environment, error) {
	var (
		last        *Environment
		failingFrom time.Time // when the current run of transport errors began
	)
	ticker := time.NewTicker(PollInterval)
	defer ticker.Stop()
	for {
		env, err := c.GetEnvironment(ctx, id)
		var apiErr *Error
		switch {
		case err == nil:
			failingFrom = time.Time{}
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &apiErr) && apiErr.Status < 500:
			return nil, err
		case failingFrom.IsZero():
			failingFrom = time.Now()
		case time.Since(failingFrom) >= WatchRetryFor:
			return nil, err
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-ticker.C:
			}
			continue
		}
		if last == nil || env.Status != last.Status || env.StatusReason != last.StatusReason {
			last = env
			if fn(*env) {
				return env, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ticker.C:
		}
	}
}

// WaitForStatus waits until the environment's status is want. onChange (may
// be nil) is called with the environment first and at every change of
// status. If the environment lands in ERROR (and want is not ERROR), the
// error is an *EnvironmentError carrying status_reason.
func (c *Client) WaitForStatus(ctx context.Context, id string, want Status, onChange func(Environment)) (*Environment, error) {
	var failed *Environment
	env, err := c.Watch(ctx, id, func(e Environment) bool {
		if onChange != nil {
			onChange(e)
		}
		if e.Status == StatusError && want != StatusError {
			failed = &e
			return true
		}
		return e.Status == want
	})
	if err != nil {
		return nil, err
	}
	if failed != nil {
		return nil, &EnvironmentError{Environment: *failed}
	}
	return env, nil
}

// WaitForDeleted waits until the environment is gone. onChange (may be nil)
// sees each status on the way. A deletion that fails leaves the environment
// in ERROR: that is an *EnvironmentError.
func (c *Client) WaitForDeleted(ctx context.Context, id string, onChange func(Environment)) error {
	_, err := c.WaitForStatus(ctx, id, "", onChange)
	if IsNotFound(err) {
		return nil
	}
	if err == nil {
		// Unreachable: no environment has the empty status.
		return fmt.Errorf("environment %s: unexpected status", id)
	}
	return err
}
