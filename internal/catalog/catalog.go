// Package catalog holds the templates and instance types a new installation
// starts with. They are written to the store on first start and never
// overwritten, so operators can edit or deactivate them.
package catalog

import (
	"context"
	"fmt"

	"dev8.dev/dev8/internal/store"
)

// Size bounds a create request may ask for. They are the same for every
// runtime; a runtime may refuse sizes its host cannot give.
const (
	MinCPUCores  = 0.25
	MaxCPUCores  = 16
	MinMemoryGB  = 1
	MaxMemoryGB  = 64
	MinStorageGB = 1
	MaxStorageGB = 500
)

// InstanceTypes are the seed's sizes.
var InstanceTypes = []store.InstanceType{
	{Name: "lightweight", DisplayName: "Lightweight", Description: "Editing, scripting and small services", CPUCores: 1, MemoryGB: 2, StorageGB: 20, SortOrder: 1, IsActive: true},
	{Name: "balanced", DisplayName: "Balanced", Description: "Everyday development: the default", CPUCores: 2, MemoryGB: 4, StorageGB: 20, SortOrder: 2, IsActive: true},
	{Name: "compute", DisplayName: "Compute", Description: "Builds, compilers and test suites", CPUCores: 4, MemoryGB: 8, StorageGB: 40, SortOrder: 3, IsActive: true},
	{Name: "memory", DisplayName: "Memory", Description: "Databases, data work and large language servers", CPUCores: 2, MemoryGB: 8, StorageGB: 40, SortOrder: 4, IsActive: true},
}

// DefaultInstanceType is used when a request names neither an instance type
// nor sizes and its template has no defaults.
const DefaultInstanceType = "balanced"

// DefaultTemplate is used when a create request names no template.
const DefaultTemplate = "base"

// Templates are the seed's templates.
var Templates = []store.Template{
	{
		Name:           "base",
		DisplayName:    "Base",
		Description:    "Debian with git, curl, an SSH client and vim: bring your own toolchain.",
		BaseImage:      "dev8/base",
		DefaultCPU:     1,
		DefaultMemory:  2,
		DefaultStorage: 20,
		Category:       "general",
		Tags:           []string{"debian", "git", "minimal"},
		Icon:           "terminal",
		IsActive:       true,
		DefaultPorts:   []store.Port{},
		DefaultEnvVars: map[string]string{},
		Extensions:     []string{"editorconfig.editorconfig"},
	},
	{
		Name:           "nodejs",
		DisplayName:    "Node.js",
		Description:    "Node.js 20 LTS with npm, pnpm and yarn.",
		BaseImage:      "dev8/nodejs",
		DefaultCPU:     2,
		DefaultMemory:  4,
		DefaultStorage: 20,
		Category:       "language",
		Tags:           []string{"javascript", "typescript", "node", "pnpm"},
		Icon:           "nodejs",
		IsPopular:      true,
		IsActive:       true,
		DefaultPorts:   []store.Port{{Port: 3000, Protocol: "http"}},
		DefaultEnvVars: map[string]string{"NODE_ENV": "development"},
		Extensions:     []string{"dbaeumer.vscode-eslint", "esbenp.prettier-vscode", "editorconfig.editorconfig"},
	},
	{
		Name:           "python",
		DisplayName:    "Python",
		Description:    "Python 3.13 with pip, venv, poetry, pytest, black and Jupyter.",
		BaseImage:      "dev8/python",
		DefaultCPU:     2,
		DefaultMemory:  4,
		DefaultStorage: 20,
		Category:       "language",
		Tags:           []string{"python", "poetry", "jupyter", "pytest"},
		Icon:           "python",
		IsPopular:      true,
		IsActive:       true,
		DefaultPorts:   []store.Port{{Port: 8000, Protocol: "http"}, {Port: 8888, Protocol: "http"}},
		DefaultEnvVars: map[string]string{"PYTHONUNBUFFERED": "1"},
		Extensions:     []string{"ms-python.python", "ms-python.black-formatter", "ms-toolsai.jupyter"},
	},
	{
		Name:           "fullstack",
		DisplayName:    "Full-stack",
		Description:    "Node.js, Python, Go and Rust in one workspace.",
		BaseImage:      "dev8/fullstack",
		DefaultCPU:     4,
		DefaultMemory:  8,
		DefaultStorage: 40,
		Category:       "fullstack",
		Tags:           []string{"node", "python", "go", "rust"},
		Icon:           "layers",
		IsActive:       true,
		DefaultPorts:   []store.Port{{Port: 3000, Protocol: "http"}, {Port: 8000, Protocol: "http"}},
		DefaultEnvVars: map[string]string{"NODE_ENV": "development"},
		Extensions:     []string{"dbaeumer.vscode-eslint", "ms-python.python", "golang.go", "rust-lang.rust-analyzer"},
	},
}

// seeder is the part of the store Seed writes to.
type seeder interface {
	EnsureTemplate(ctx context.Context, t store.Template) error
	EnsureInstanceType(ctx context.Context, it store.InstanceType) error
}

// Seed writes the default templates and instance types that are missing.
func Seed(ctx context.Context, s seeder) error {
	for _, it := range InstanceTypes {
		if err := s.EnsureInstanceType(ctx, it); err != nil {
			return fmt.Errorf("seed instance type %s: %w", it.Name, err)
		}
	}
	for _, t := range Templates {
		if err := s.EnsureTemplate(ctx, t); err != nil {
			return fmt.Errorf("seed template %s: %w", t.Name, err)
		}
	}
	return nil
}
