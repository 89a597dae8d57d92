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
			{Name: "memory", DisplayName: "Memory", CPUCores: 2, MemoryGB: 16, StorageGB: 40, SortOrder: 4, IsActive: true},
			{Name: "lightweight", DisplayName: "Light", Description: "small", CPUCores: 1, MemoryGB: 2, StorageGB: 10, SortOrder: 1, IsActive: true},
			{Name: "compute", DisplayName: "Compute", CPUCores: 8, MemoryGB: 16, StorageGB: 40, SortOrder: 3, IsActive: true},
			{Name: "balanced", DisplayName: "Balanced", CPUCores: 2, MemoryGB: 4, StorageGB: 20, SortOrder: 2, IsActive: true},
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
		list, err := db.ListInstanceTypes(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.InstanceType{types[1], types[3], types[2], types[0]}
		if !reflect.DeepEqual(list, want) {
			t.Errorf("ListInstanceTypes = %+v, want %+v", list, want)
		}
	})
}

// TestInstanceTypePlacement: an instance type's extended resources, node
// selector and active flag round-trip; operators create and edit types
// (a duplicate name is a conflict, a rename refused, fn's error returned
// with nothing changed); a retired type leaves the listing of active
// types but stays readable, and environments keep their own copy.
func TestInstanceTypePlacement(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, ctx context.Context, db *store.DB) {
		gpu := store.InstanceType{Name: "gpu", DisplayName: "GPU", Description: "one GPU", CPUCores: 4, MemoryGB: 16, StorageGB: 50, SortOrder: 5,
			Resources: map[string]string{"nvidia.com/gpu": "1"}, NodeSelector: map[string]string{"pool": "gpu"}, IsActive: true}
		if err := db.CreateInstanceType(ctx, gpu); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateInstanceType(ctx, store.InstanceType{Name: "gpu", CPUCores: 1, MemoryGB: 1, StorageGB: 1}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate create: %v, want ErrConflict", err)
		}
		if err := db.CreateInstanceType(ctx, store.InstanceType{Name: "plain", CPUCores: 1, MemoryGB: 1, StorageGB: 1, SortOrder: 1, IsActive: true}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.GetInstanceType(ctx, "gpu"); err != nil || !reflect.DeepEqual(got, gpu) {
			t.Errorf("GetInstanceType = %+v, %v; want %+v", got, err, gpu)
		}
		if got, err := db.GetInstanceType(ctx, "plain"); err != nil || got.Resources != nil || got.NodeSelector != nil {
			t.Errorf("plain type: %+v, %v; want no placement", got, err)
		}

		before, after, err := db.UpdateInstanceType(ctx, "gpu", func(it *store.InstanceType) error {
			it.Resources["nvidia.com/gpu"] = "2"
			it.NodeSelector = map[string]string{"pool": "gpu-a100", "zone": "b"}
			it.DisplayName = "Two GPUs"
			return nil
		})
		if err != nil || !reflect.DeepEqual(before, gpu) || after.Resources["nvidia.com/gpu"] != "2" || after.DisplayName != "Two GPUs" {
			t.Fatalf("UpdateInstanceType: before %+v after %+v, %v", before, after, err)
		}
		if got, _ := db.GetInstanceType(ctx, "gpu"); !reflect.DeepEqual(got, after) {
			t.Errorf("after update: %+v, want %+v", got, after)
		}
		boom := errors.New("no")
		if _, _, err := db.UpdateInstanceType(ctx, "gpu", func(it *store.InstanceType) error { it.CPUCores = 9; return boom }); err != boom {
			t.Errorf("fn's error: %v", err)
		}
		if _, _, err := db.UpdateInstanceType(ctx, "gpu", func(it *store.InstanceType) error { it.Name = "other"; return nil }); err == nil {
			t.Error("rename accepted")
		}
		if _, _, err := db.UpdateInstanceType(ctx, "missing", func(*store.InstanceType) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing: %v", err)
		}
		if got, _ := db.GetInstanceType(ctx, "gpu"); got.CPUCores != 4 || got.Name != "gpu" {
			t.Errorf("a refused update changed the type: %+v", got)
		}

		// An environment keeps the placement it was made with.
		u := mustUser(t, ctx, db, "gpu@example.com")
		env := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "cuda", Runtime: "kubernetes", InstanceType: "gpu", CPUCores: 4, MemoryGB: 16, StorageGB: 50,
			Resources: map[string]string{"nvidia.com/gpu": "2"}, NodeSelector: map[string]string{"pool": "gpu-a100"}})
		if _, _, err := db.UpdateInstanceType(ctx, "gpu", func(it *store.InstanceType) error {
			it.IsActive, it.Resources, it.NodeSelector = false, nil, nil
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := db.GetEnvironment(ctx, env.ID)
		if err != nil || got.Resources["nvidia.com/gpu"] != "2" || got.NodeSelector["pool"] != "gpu-a100" || len(got.Resources) != 1 || len(got.NodeSelector) != 1 {
			t.Errorf("environment's placement: %+v %+v, %v", got.Resources, got.NodeSelector, err)
		}
		plainEnv := mustEnv(t, ctx, db, store.Environment{UserID: u.ID, Name: "plain", Runtime: "docker", CPUCores: 1, MemoryGB: 1, StorageGB: 1})
		if got, _ := db.GetEnvironment(ctx, plainEnv.ID); got.Resources != nil || got.NodeSelector != nil {
			t.Errorf("plain environment's placement: %v %v", got.Resources, got.NodeSelector)
		}

		active, err := db.ListInstanceTypes(ctx, false)
		if err != nil || len(active) != 1 || active[0].Name != "plain" {
			t.Errorf("active types: %+v, %v", active, err)
		}
		all, err := db.ListInstanceTypes(ctx, true)
		if err != nil || len(all) != 2 || all[0].Name != "plain" || all[1].Name != "gpu" || all[1].IsActive {
			t.Errorf("all types: %+v, %v", all, err)
		}
		if got, err := db.GetInstanceType(ctx, "gpu"); err != nil || got.IsActive {
			t.Errorf("a retired type: %+v, %v", got, err)
		}
	})
}
