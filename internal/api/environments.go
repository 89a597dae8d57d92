package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/httpmw"
	"dev8.dev/dev8/internal/lifecycle"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// List pagination bounds.
const (
	defaultListLimit = 50
	maxListLimit     = 100
)

// toEnvironmentJSON renders e as the API shows it: the sdk's Environment,
// the one definition of the wire type (optional values are null rather
// than empty strings, lists and maps never null).
func (a *API) toEnvironmentJSON(e store.Environment) sdk.Environment {
	envVars := e.EnvironmentVariables
	if envVars == nil {
		envVars = map[string]string{}
	}
	restoring, _ := a.backups.Restoring(e.ID)
	return sdk.Environment{
		RestoringSnapshot:    restoring,
		ID:                   e.ID,
		UserID:               e.UserID,
		Name:                 e.Name,
		Status:               sdk.Status(e.Status),
		StatusReason:         e.StatusReason,
		CloudProvider:        strings.ToUpper(e.Runtime),
		Runtime:              e.Runtime,
		CloudRegion:          e.CloudRegion,
		TemplateName:         e.TemplateName,
		BaseImage:            e.BaseImage,
		InstanceType:         e.InstanceType,
		CPUCores:             e.CPUCores,
		MemoryGB:             e.MemoryGB,
		StorageGB:            e.StorageGB,
		Resources:            nonNilMap(e.Resources),
		NodeSelector:         nonNilMap(e.NodeSelector),
		EnvironmentVariables: envVars,
		Ports:                toPorts(e.Ports),
		AutoStopMinutes:      e.AutoStopMinutes,
		VSCodeURL:            e.VSCodeURL,
		SSHConnectionString:  e.SSHConnectionString,
		EstimatedCostPerHour: e.EstimatedCostPerHour,
		TotalCost:            lifecycle.RoundCost(lifecycle.TotalCost(e, a.now())),
		LastAccessedAt:       lastActive(e),
		StoppedAt:            e.StoppedAt,
		CreatedAt:            e.CreatedAt,
		UpdatedAt:            e.UpdatedAt,
	}
}

// lastActive is when the environment was last used, or zero (null on the
// wire) when it has never run: the store keeps its creation time there for
// the idle reaper, which is not activity. Reaching RUNNING sets the SSH
// connection string, and nothing clears it.
func lastActive(e store.Environment) time.Time {
	if e.SSHConnectionString == "" && e.Status != store.StatusRunning {
		return time.Time{}
	}
	return e.LastAccessedAt
}

// fromPorts is a request's ports as the lifecycle takes them.
func fromPorts(ports []sdk.Port) []store.Port {
	if ports == nil {
		return nil
	}
	out := make([]store.Port, len(ports))
	for i, p := range ports {
		out[i] = store.Port{Port: p.Port, Protocol: p.Protocol}
	}
	return out
}

// toPorts renders ports; never null.
func toPorts(ports []store.Port) []sdk.Port {
	out := make([]sdk.Port, len(ports))
	for i, p := range ports {
		out[i] = sdk.Port{Port: p.Port, Protocol: p.Protocol}
	}
	return out
}

// explicitSize rejects an explicit zero or negative size: leaving the field
// out is how a client asks for the default.
func explicitSize(field string, v *int) (int, error) {
	if v == nil {
		return 0, nil
	}
	if *v <= 0 {
		return 0, httpapi.Validation(fmt.Sprintf("%s: must be a positive integer (omit it for the default)", field))
	}
	return *v, nil
}

func (a *API) createEnvironment(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	var req sdk.CreateEnvironmentRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	params, err := a.createParams(r, caller, req)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	fork, err := a.forkSource(r.Context(), caller, req.FromSnapshot)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	env, err := a.lifecycle.Create(r.Context(), params)
	if err != nil {
		a.audit(r, "environment.create", "environment", "", false, map[string]any{"name": params.Name, "error": httpapi.ToError(err).Message})
		a.writeError(w, r, err)
		return
	}
	a.audit(r, "environment.create", "environment", env.ID, true, map[string]any{"name": env.Name, "template": env.TemplateName, "from_snapshot": req.FromSnapshot})
	if fork != nil {
		a.backups.Fork(env, *fork)
	}
	w.Header().Set("Location", "/api/v1/environments/"+env.ID)
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{
		"environment": a.toEnvironmentJSON(env),
		"message":     "Environment is being created",
	})
}

func (a *API) createParams(r *http.Request, caller store.User, req sdk.CreateEnvironmentRequest) (lifecycle.CreateParams, error) {
	p := lifecycle.CreateParams{
		UserID:               caller.ID,
		Name:                 req.Name,
		Template:             req.TemplateName,
		InstanceType:         req.InstanceType,
		BaseImage:            req.BaseImage,
		CloudRegion:          req.CloudRegion,
		EnvironmentVariables: req.EnvironmentVariables,
		Ports:                fromPorts(req.Ports),
		AutoStopMinutes:      req.AutoStopMinutes,
	}
	if err := a.checkBaseImage(r.Context(), req.BaseImage); err != nil {
		return p, err
	}
	if req.Template != "" {
		if req.TemplateName != "" && req.TemplateName != req.Template {
			return p, httpapi.Validation("template and template_name name different templates; send one")
		}
		p.Template = req.Template
	}
	owner := caller
	if req.UserID != "" && req.UserID != caller.ID {
		if caller.Role != store.RoleAdmin {
			return p, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "user_id: you can only create environments for yourself"}
		}
		u, err := a.store.GetUser(r.Context(), req.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return p, httpapi.Validation(fmt.Sprintf("user_id: no user %q", req.UserID))
		} else if err != nil {
			return p, fmt.Errorf("load user: %w", err)
		}
		p.UserID = req.UserID
		owner = u
	}
	// Without an auto-stop in the request, the owner's default applies
	// (PATCH /auth/me), else the server's.
	if p.AutoStopMinutes == nil && owner.DefaultAutoStopMinutes != nil {
		minutes := *owner.DefaultAutoStopMinutes
		p.AutoStopMinutes = &minutes
	}
	p.Runtime = strings.ToLower(req.Runtime)
	if req.CloudProvider != "" {
		if p.Runtime != "" && !strings.EqualFold(req.CloudProvider, p.Runtime) {
			return p, httpapi.Validation("runtime and cloud_provider name different runtimes; send one")
		}
		p.Runtime = strings.ToLower(req.CloudProvider)
	}
	var err error
	if req.CPUCores != nil {
		// Checked here as well as by the lifecycle, so that 0 (which the
		// lifecycle reads as "not given") is refused rather than ignored.
		if err := catalog.CheckCPU(*req.CPUCores); err != nil {
			return p, httpapi.Validation("cpu_cores: " + err.Error())
		}
		p.CPUCores = *req.CPUCores
	}
	if p.MemoryGB, err = explicitSize("memory_gb", req.MemoryGB); err != nil {
		return p, err
	}
	if p.StorageGB, err = explicitSize("storage_gb", req.StorageGB); err != nil {
		return p, err
	}
	return p, nil
}

func (a *API) listEnvironments(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	q := r.URL.Query()
	filter := store.EnvironmentFilter{UserID: caller.ID, Limit: defaultListLimit}
	if v := q.Get("status"); v != "" {
		for _, s := range strings.Split(v, ",") {
			st := store.Status(strings.ToUpper(strings.TrimSpace(s)))
			if !slices.Contains(store.Statuses, st) {
				a.writeError(w, r, httpapi.Validation(fmt.Sprintf("status: %q is not one of CREATING, STARTING, RUNNING, STOPPING, STOPPED, ERROR, DELETING", s)))
				return
			}
			filter.Statuses = append(filter.Statuses, st)
		}
	}
	var err error
	if filter.Limit, err = httpapi.IntParam(q.Get("limit"), "limit", defaultListLimit, 1, maxListLimit); err != nil {
		a.writeError(w, r, err)
		return
	}
	if filter.Offset, err = httpapi.IntParam(q.Get("offset"), "offset", 0, 0, 1<<31-1); err != nil {
		a.writeError(w, r, err)
		return
	}
	switch {
	case q.Get("all") == "true":
		if caller.Role != store.RoleAdmin {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "all=true is for admins"})
			return
		}
		filter.UserID = ""
	case q.Get("user_id") != "" && q.Get("user_id") != caller.ID:
		if caller.Role != store.RoleAdmin {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "user_id: you can only list your own environments"})
			return
		}
		filter.UserID = q.Get("user_id")
	}
	envs, total, err := a.store.ListEnvironments(r.Context(), filter)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list environments: %w", err))
		return
	}
	out := make([]sdk.Environment, len(envs))
	for i, e := range envs {
		out[i] = a.toEnvironmentJSON(e)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"environments": out,
		"total":        total,
		"limit":        filter.Limit,
		"offset":       filter.Offset,
	})
}

func (a *API) getEnvironment(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"environment": a.toEnvironmentJSON(httpmw.Environment(r))})
}

// actionResponse answers start, stop and delete. They return 200 as soon as
// the request is recorded; the work continues in the background and status
// says where it stands (STARTING, STOPPING, DELETING).
func (a *API) actionResponse(w http.ResponseWriter, r *http.Request, before, after store.Environment, changed, unchanged string) {
	msg := changed
	if before.Status == after.Status {
		msg = unchanged
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"message": msg, "id": after.ID, "status": after.Status})
}

func (a *API) startEnvironment(w http.ResponseWriter, r *http.Request) {
	before := httpmw.Environment(r)
	after, err := a.lifecycle.Start(r.Context(), before.ID)
	a.auditEnvironmentAction(r, "environment.start", before, after, err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	already := "Environment is already starting"
	if after.Status == store.StatusRunning {
		already = "Environment is already running"
	}
	a.actionResponse(w, r, before, after, "Environment is starting", already)
}

func (a *API) stopEnvironment(w http.ResponseWriter, r *http.Request) {
	before := httpmw.Environment(r)
	after, err := a.lifecycle.Stop(r.Context(), before.ID)
	a.auditEnvironmentAction(r, "environment.stop", before, after, err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.actionResponse(w, r, before, after, "Environment is stopping", "Environment is already "+strings.ToLower(string(after.Status)))
}

func (a *API) deleteEnvironment(w http.ResponseWriter, r *http.Request) {
	before := httpmw.Environment(r)
	after, err := a.lifecycle.Delete(r.Context(), before.ID)
	a.auditEnvironmentAction(r, "environment.delete", before, after, err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.actionResponse(w, r, before, after, "Environment is being deleted", "Environment is already being deleted")
}

// auditEnvironmentAction records a start, stop or delete request and what
// came of it.
func (a *API) auditEnvironmentAction(r *http.Request, action string, before, after store.Environment, err error) {
	detail := map[string]any{"name": before.Name, "owner_id": before.UserID, "status_before": string(before.Status)}
	if err != nil {
		detail["error"] = httpapi.ToError(err).Message
	} else {
		detail["status_after"] = string(after.Status)
	}
	a.audit(r, action, "environment", before.ID, err == nil, detail)
}

// reportActivity takes an empty body or {} and marks the environment used.
func (a *API) reportActivity(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := httpapi.DecodeJSON(r, &body, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	if err := a.lifecycle.Touch(r.Context(), httpmw.Environment(r).ID); err != nil {
		a.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) listTemplates(w http.ResponseWriter, r *http.Request) {
	caller := mustUser(r.Context())
	tpls, err := a.store.ListTemplates(r.Context())
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list templates: %w", err))
		return
	}
	out := make([]sdk.Template, len(tpls))
	for i, t := range tpls {
		envVars := t.DefaultEnvVars
		if envVars == nil {
			envVars = map[string]string{}
		}
		out[i] = sdk.Template{
			ID:                   t.ID,
			Name:                 t.Name,
			DisplayName:          t.DisplayName,
			Description:          t.Description,
			BaseImage:            t.BaseImage,
			DefaultCPU:           t.DefaultCPU,
			DefaultMemory:        t.DefaultMemory,
			DefaultStorage:       t.DefaultStorage,
			Category:             t.Category,
			Tags:                 nonNil(t.Tags),
			Icon:                 t.Icon,
			IsPopular:            t.IsPopular,
			DefaultPorts:         toPorts(t.DefaultPorts),
			DefaultEnvVars:       envVars,
			Extensions:           nonNil(t.Extensions),
			EstimatedCostPerHour: a.lifecycle.ListPricing().HourlyCost(t.DefaultCPU, t.DefaultMemory, t.DefaultStorage),
		}
		if err := a.templateState(r.Context(), &out[i], t, caller.ID); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"templates": out})
}

// templateState fills in where userID may run a template now: per offered
// runtime, and for a create that names none.
func (a *API) templateState(ctx context.Context, out *sdk.Template, t store.Template, userID string) error {
	statuses, err := a.lifecycle.TemplateStatus(ctx, t, userID)
	if err != nil {
		return err
	}
	out.Runtimes = make([]sdk.TemplateRuntime, len(statuses))
	for i, s := range statuses {
		out.Runtimes[i] = sdk.TemplateRuntime{Runtime: s.Runtime, State: string(s.State), Reason: s.Reason, HostTools: s.HostTools, AdminOnly: s.AdminOnly}
	}
	out.Runtime = a.lifecycle.ChooseRuntime(statuses)
	out.State = sdk.TemplateUnavailable
	for _, s := range out.Runtimes {
		if s.Runtime == out.Runtime {
			out.State, out.StateReason = s.State, s.Reason
		}
	}
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
