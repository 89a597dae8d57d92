package store_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"dev8.dev/dev8/internal/store"
)

func TestTemplates(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		node := store.Template{
			Name: "node", DisplayName: "Node.js", Description: "Node 20", BaseImage: "dev8/node:20",
			DefaultCPU: 2, DefaultMemory: 4, DefaultStorage: 20, Category: "language",
			Tags: []string{"javascript", "typescript"}, Icon: "node.svg", IsPopular: true, IsActive: true,
			DefaultPorts:   []store.Port{{Port: 3000, Protocol: "http"}},
			DefaultEnvVars: map[string]string{"NODE_ENV": "development"},
			Extensions:     []string{"dbaeumer.vscode-eslint"},
		}
		templates := []store.Template{
			node,
			{Name: "python", DisplayName: "Python", IsActive: true},
			{Name: "go", DisplayName: "Go", IsActive: true, IsPopular: true},
			{Name: "retired", DisplayName: "Old", IsActive: false, IsPopular: true},
			{Name: "alpine", DisplayName: "Alpine", IsActive: true},
		}
		for _, tpl := range templates {
			if err := db.EnsureTemplate(ctx, tpl); err != nil {
				t.Fatalf("EnsureTemplate(%s): %v", tpl.Name, err)
			}
		}
		// Ensuring again with different content changes nothing.
		changed := node
		changed.DisplayName, changed.IsPopular, changed.Tags = "Overwritten", false, nil
		if err := db.EnsureTemplate(ctx, changed); err != nil {
			t.Fatalf("EnsureTemplate again: %v", err)
		}

		got, err := db.GetTemplate(ctx, "node")
		if err != nil {
			t.Fatalf("GetTemplate: %v", err)
		}
		checkID(t, got.ID, "tpl_")
		want := node
		want.ID, want.CreatedAt, want.UpdatedAt = got.ID, got.CreatedAt, got.UpdatedAt
		if got.CreatedAt.IsZero() || !reflect.DeepEqual(got, want) {
			t.Errorf("GetTemplate\n %+v\nwant\n %+v", got, want)
		}
		plain, err := db.GetTemplate(ctx, "python")
		if err != nil || plain.Tags != nil || plain.DefaultEnvVars != nil || plain.IsPopular {
			t.Errorf("GetTemplate(python) = %+v, %v", plain, err)
		}
		for _, name := range []string{"retired", "missing"} {
			if _, err := db.GetTemplate(ctx, name); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("GetTemplate(%s) error %v, want ErrNotFound", name, err)
			}
		}

		list, err := db.ListTemplates(ctx)
		if err != nil {
			t.Fatalf("ListTemplates: %v", err)
		}
		var names []string
		for _, tpl := range list {
			names = append(names, tpl.Name)
		}
		if wantNames := []string{"go", "node", "alpine", "python"}; !slices.Equal(names, wantNames) {
			t.Errorf("ListTemplates order %v, want %v", names, wantNames)
		}
	})
}

func TestInstanceTypes(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		types := []store.InstanceType{
			{Name: "memory", DisplayName: "Memory", CPUCores: 2, MemoryGB: 16, StorageGB: 40, SortOrder: 4},
			{Name: "lightweight", DisplayName: "Light", Description: "small", CPUCores: 1, MemoryGB: 2, StorageGB: 10, SortOrder: 1},
			{Name: "compute", DisplayName: "Compute", CPUCores: 8, MemoryGB: 16, StorageGB: 40, SortOrder: 3},
			{Name: "balanced", DisplayName: "Balanced", CPUCores: 2, MemoryGB: 4, StorageGB: 20, SortOrder: 2},
		}
		for _, it := range types {
			if err := db.EnsureInstanceType(ctx, it); err != nil {
				t.Fatalf("EnsureInstanceType(%s): %v", it.Name, err)
			}
		}
		if err := db.EnsureInstanceType(ctx, store.InstanceType{Name: "balanced", CPUCores: 64, SortOrder: 0}); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetInstanceType(ctx, "balanced")
		if err != nil || !reflect.DeepEqual(got, types[3]) {
			t.Errorf("GetInstanceType = %+v, %v; want the original %+v", got, err, types[3])
		}
		if _, err := db.GetInstanceType(ctx, "huge"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetInstanceType(missing) error %v, want ErrNotFound", err)
		}
		list, err := db.ListInstanceTypes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.InstanceType{types[1], types[3], types[2], types[0]}
		if !reflect.DeepEqual(list, want) {
			t.Errorf("ListInstanceTypes = %+v, want %+v", list, want)
		}
	})
}
