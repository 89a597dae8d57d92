package web

import (
	"errors"
	"net/http"

	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/store"
)

// ideGate is what the IDE page says in place of the IDE: a title, what is
// going on, the reason (a failure's status reason, or why the IDE did not
// answer), and which actions to offer. static/js/ide.js keeps it up to
// date as the environment's status changes, and opens the IDE once it runs.
type ideGate struct {
	Title, Message, Reason string
	// CanStart, CanDelete: the Start and Delete buttons.
	CanStart, CanDelete bool
	// Waiting: the page opens the IDE by itself once it answers.
	Waiting bool
	// NoIDE: the workspace runs without code-server.
	NoIDE bool
}

// IDEUnavailable renders the IDE page (httpmw.Pages) for the environment
// loaded for r, with the status of problem: a browser that opens
// /w/{id}/ide/ of a stopped, failed or starting workspace gets a page that
// says so and offers what to do, never the API's JSON.
func (s *Site) IDEUnavailable(w http.ResponseWriter, r *http.Request, problem error) {
	env := httpmw.Environment(r)
	data := s.newPageData(r, "ide", "VS Code")
	data.IDE = describeIDE(env, problem)
	status := http.StatusServiceUnavailable
	var apiErr *httpapi.Error
	if errors.As(problem, &apiErr) {
		status = apiErr.Status
	} else if problem != nil {
		s.log.WarnContext(r.Context(), "IDE unavailable", "environment", env.ID, "err", problem)
	}
	s.render(w, r, status, "ide", data)
}

func describeIDE(env store.Environment, problem error) *ideGate {
	g := &ideGate{}
	switch env.Status {
	case store.StatusStopped:
		g.Title, g.CanStart, g.CanDelete = env.Name+" is stopped", true, true
		g.Message = "Start it to open VS Code; the files in /workspace are as you left them."
	case store.StatusError:
		g.Title, g.CanStart, g.CanDelete = env.Name+" failed", true, true
		g.Reason = env.StatusReason
		if g.Reason == "" {
			g.Reason = "No reason was recorded."
		}
		g.Message = "Start it again once the cause is fixed, or delete it."
	case store.StatusCreating:
		g.Title, g.Waiting = "Creating "+env.Name+"…", true
		g.Message = "VS Code opens here as soon as the workspace is ready."
	case store.StatusStarting:
		g.Title, g.Waiting = "Starting "+env.Name+"…", true
		g.Message = "VS Code opens here as soon as the workspace is ready."
	case store.StatusStopping:
		g.Title = env.Name + " is stopping"
		g.Message = "Once it has stopped, you can start it again from here."
	case store.StatusDeleting:
		g.Title = env.Name + " is being deleted"
		g.Message = "There is no IDE to open any more."
	case store.StatusRunning:
		if env.VSCodeURL == "" {
			g.Title, g.NoIDE = env.Name+" has no VS Code", true
			g.Message = "code-server is not installed where this workspace runs. The terminal and SSH work."
			break
		}
		g.Title, g.Waiting = "VS Code is not answering yet", true
		g.Message = "The workspace runs, but its IDE did not answer; it may still be starting. This page opens it as soon as it answers."
		var apiErr *httpapi.Error
		if errors.As(problem, &apiErr) {
			g.Reason = apiErr.Message
			if apiErr.Details != "" {
				g.Reason += ": " + apiErr.Details
			}
		}
	default:
		g.Title, g.Message = env.Name+" is "+string(env.Status), "VS Code is available while the workspace runs."
	}
	return g
}
