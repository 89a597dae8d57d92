package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"dev8.dev/dev8/sdk"
)

// TestInstanceTypesCommands: an admin adds a GPU instance type with
// --resource and --node-selector, edits, retires and restores it through
// dev8 instance-types; the listing shows its placement; a member may list
// but not change; bad input is refused with the server's words; creating
// a workspace of that type on this server (local runtime) is refused
// naming the GPU and the runtime.
func TestInstanceTypesCommands(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	h.login("root@example.com")

	out, errOut, err := h.run("", "instance-types", "create", "gpu", "--display-name", "GPU", "--cpu", "4", "--memory", "16", "--storage", "50",
		"--resource", "nvidia.com/gpu=1", "--node-selector", "pool=gpu")
	if err != nil || !strings.Contains(out, "Created instance type gpu") || !strings.Contains(out, "nvidia.com/gpu=1; nodes pool=gpu") {
		t.Fatalf("create: %q %q %v", out, errOut, err)
	}
	for _, bad := range [][]string{
		{"create", "tpu", "--cpu", "4", "--memory", "16", "--storage", "50", "--resource", "tpu=1"},
		{"create", "tpu", "--cpu", "4", "--memory", "16", "--storage", "50", "--resource", "nvidia.com/gpu"},
		{"create", "tpu", "--cpu", "99", "--memory", "16", "--storage", "50"},
		{"create", "tpu", "--memory", "16", "--storage", "50"},
		{"edit", "gpu"},
		{"edit", "gpu", "--node-selector", "pool=a b"},
		{"edit", "gpu", "--no-resources", "--resource", "nvidia.com/gpu=2"},
		{"edit", "nope", "--cpu", "2"},
	} {
		if out, errOut, err := h.run("", append([]string{"instance-types"}, bad...)...); err == nil {
			t.Errorf("instance-types %v: accepted: %q %q", bad, out, errOut)
		}
	}

	out, _, err = h.run("", "instance-types", "ls")
	if err != nil || !strings.Contains(out, "PLACEMENT") || !strings.Contains(out, "4 CPU/16 GB/50 GB") || !strings.Contains(out, "nvidia.com/gpu=1") {
		t.Fatalf("ls: %q %v", out, err)
	}
	out, _, err = h.run("", "instance-types", "edit", "gpu", "--resource", "nvidia.com/gpu=2", "--no-node-selector", "--memory", "32")
	if err != nil || !strings.Contains(out, "4 CPU/32 GB/50 GB") || !strings.Contains(out, "nvidia.com/gpu=2") || strings.Contains(out, "pool=gpu") {
		t.Fatalf("edit: %q %v", out, err)
	}

	// This server's runtime (local) cannot give a GPU.
	_, errOut, err = h.run("", "create", "train", "--instance-type", "gpu")
	if err == nil || !strings.Contains(err.Error()+errOut, "nvidia.com/gpu=2") || !strings.Contains(err.Error()+errOut, "local runtime cannot give") {
		t.Errorf("create a GPU workspace on local: %q %v", errOut, err)
	}

	if out, _, err := h.run("", "instance-types", "deactivate", "gpu"); err != nil || !strings.Contains(out, "Retired: instance type gpu") {
		t.Fatalf("deactivate: %q %v", out, err)
	}
	if out, _, err := h.run("", "instance-types", "ls"); err != nil || strings.Contains(out, "gpu") {
		t.Errorf("ls after deactivate: %q %v", out, err)
	}
	out, _, err = h.run("", "instance-types", "ls", "--all", "--json")
	var all []sdk.InstanceType
	// Sort order 0: listed first.
	if err != nil || json.Unmarshal([]byte(out), &all) != nil || len(all) != 5 || all[0].Name != "gpu" || all[0].IsActive || all[0].Resources["nvidia.com/gpu"] != "2" {
		t.Fatalf("ls --all --json: %s %v", out, err)
	}
	if _, _, err := h.run("", "instance-types", "activate", "gpu"); err != nil {
		t.Fatal(err)
	}

	// A member lists, and is refused changes.
	member := h.user("ada@example.com")
	if out, _, err := h.run("", "instance-types", "ls", "--token", member); err != nil || !strings.Contains(out, "gpu") {
		t.Errorf("member ls: %q %v", out, err)
	}
	if _, _, err := h.run("", "instance-types", "deactivate", "gpu", "--token", member); err == nil || !strings.Contains(err.Error(), "admins") {
		t.Errorf("member deactivate: %v", err)
	}
	if _, _, err := h.run("", "instance-types", "ls", "--all", "--token", member); err == nil {
		t.Error("member ls --all: accepted")
	}
}
