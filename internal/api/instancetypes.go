package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"

	"github.com/go-chi/chi/v5"

	"dev8.dev/dev8/internal/catalog"
	"dev8.dev/dev8/internal/httpapi"
	"dev8.dev/dev8/internal/store"
	"dev8.dev/dev8/sdk"
)

// InstanceTypeStore is the store's side of the instance types admins
// manage.
type InstanceTypeStore interface {
	ListInstanceTypes(ctx context.Context, all bool) ([]store.InstanceType, error)
	CreateInstanceType(ctx context.Context, it store.InstanceType) error
	UpdateInstanceType(ctx context.Context, name string, fn func(*store.InstanceType) error) (before, after store.InstanceType, err error)
}

// toInstanceTypeJSON renders it as the API shows it (the sdk's type).
func (a *API) toInstanceTypeJSON(it store.InstanceType) sdk.InstanceType {
	return sdk.InstanceType{
		Name:                 it.Name,
		DisplayName:          it.DisplayName,
		Description:          it.Description,
		CPUCores:             it.CPUCores,
		MemoryGB:             it.MemoryGB,
		StorageGB:            it.StorageGB,
		EstimatedCostPerHour: a.lifecycle.ListPricing().HourlyCost(it.CPUCores, it.MemoryGB, it.StorageGB),
		Resources:            nonNilMap(it.Resources),
		NodeSelector:         nonNilMap(it.NodeSelector),
		IsActive:             it.IsActive,
	}
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// emptyToNil stores an empty map as none.
func emptyToNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// listInstanceTypes: GET /instance-types?all=: the active types; with
// all=true (admins) the retired ones too.
func (a *API) listInstanceTypes(w http.ResponseWriter, r *http.Request) {
	var all bool
	switch v := r.URL.Query().Get("all"); v {
	case "", "false":
	case "true":
		if mustUser(r.Context()).Role != store.RoleAdmin {
			a.writeError(w, r, &httpapi.Error{Status: http.StatusForbidden, Code: httpapi.CodeForbidden, Message: "Not allowed", Details: "all=true is for admins"})
			return
		}
		all = true
	default:
		a.writeError(w, r, httpapi.Validation("all: must be true or false"))
		return
	}
	its, err := a.store.ListInstanceTypes(r.Context(), all)
	if err != nil {
		a.writeError(w, r, fmt.Errorf("list instance types: %w", err))
		return
	}
	out := make([]sdk.InstanceType, len(its))
	for i, it := range its {
		out[i] = a.toInstanceTypeJSON(it)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"instance_types": out})
}

// checkInstanceType is catalog.CheckInstanceType as a 400.
func checkInstanceType(it store.InstanceType) error {
	if err := catalog.CheckInstanceType(it); err != nil {
		return httpapi.Validation(err.Error())
	}
	return nil
}

// instanceTypeDetail is what the audit log keeps of a type.
func instanceTypeDetail(it store.InstanceType) map[string]any {
	return map[string]any{
		"cpu_cores": it.CPUCores, "memory_gb": it.MemoryGB, "storage_gb": it.StorageGB,
		"resources": nonNilMap(it.Resources), "node_selector": nonNilMap(it.NodeSelector), "is_active": it.IsActive,
	}
}

// createInstanceType: POST /instance-types (admins) adds an active type.
func (a *API) createInstanceType(w http.ResponseWriter, r *http.Request) {
	var req sdk.CreateInstanceTypeRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	it := store.InstanceType{
		Name: req.Name, DisplayName: req.DisplayName, Description: req.Description,
		CPUCores: req.CPUCores, MemoryGB: req.MemoryGB, StorageGB: req.StorageGB, SortOrder: req.SortOrder,
		Resources: emptyToNil(req.Resources), NodeSelector: emptyToNil(req.NodeSelector), IsActive: true,
	}
	if it.DisplayName == "" {
		it.DisplayName = it.Name
	}
	if err := checkInstanceType(it); err != nil {
		a.writeError(w, r, err)
		return
	}
	err := a.store.CreateInstanceType(r.Context(), it)
	if errors.Is(err, store.ErrConflict) {
		a.writeError(w, r, &httpapi.Error{Status: http.StatusConflict, Code: httpapi.CodeConflict, Message: "Name already in use",
			Details: fmt.Sprintf("an instance type named %q exists (retired ones too: GET /api/v1/instance-types?all=true); edit it instead", it.Name)})
		return
	}
	if err != nil {
		a.writeError(w, r, fmt.Errorf("create instance type: %w", err))
		return
	}
	a.log.InfoContext(r.Context(), "instance type created", "name", it.Name)
	a.audit(r, "instance_type.create", "instance_type", it.Name, true, instanceTypeDetail(it))
	w.Header().Set("Location", "/api/v1/instance-types/"+it.Name)
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"instance_type": a.toInstanceTypeJSON(it)})
}

// patchInstanceType: PATCH /instance-types/{name} (admins) edits a type,
// retires it (is_active false) or brings it back. Environments made from
// it keep the sizes and placement they were made with.
func (a *API) patchInstanceType(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	var req sdk.UpdateInstanceTypeRequest
	if err := httpapi.DecodeJSON(r, &req, false); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req == (sdk.UpdateInstanceTypeRequest{}) {
		a.writeError(w, r, httpapi.Validation("send at least one of display_name, description, cpu_cores, memory_gb, storage_gb, sort_order, resources, node_selector, is_active"))
		return
	}
	before, after, err := a.store.UpdateInstanceType(r.Context(), name, func(it *store.InstanceType) error {
		set(&it.DisplayName, req.DisplayName)
		set(&it.Description, req.Description)
		set(&it.CPUCores, req.CPUCores)
		set(&it.MemoryGB, req.MemoryGB)
		set(&it.StorageGB, req.StorageGB)
		set(&it.SortOrder, req.SortOrder)
		set(&it.IsActive, req.IsActive)
		if req.Resources != nil {
			it.Resources = emptyToNil(*req.Resources)
		}
		if req.NodeSelector != nil {
			it.NodeSelector = emptyToNil(*req.NodeSelector)
		}
		return checkInstanceType(*it)
	})
	if errors.Is(err, store.ErrNotFound) {
		a.writeError(w, r, httpapi.NotFound("Instance type"))
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	action := "instance_type.update"
	switch {
	case before.IsActive && !after.IsActive:
		action = "instance_type.deactivate"
	case !before.IsActive && after.IsActive:
		action = "instance_type.activate"
	}
	a.log.InfoContext(r.Context(), "instance type changed", "name", name, "action", action)
	a.audit(r, action, "instance_type", name, true, map[string]any{"from": instanceTypeDetail(before), "to": instanceTypeDetail(after)})
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"instance_type": a.toInstanceTypeJSON(after)})
}

// set is *dst = *v when v is not nil.
func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}
