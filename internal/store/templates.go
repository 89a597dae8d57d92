package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
)

const templateColumns = `id, name, display_name, description, base_image,
	default_cpu, default_memory_gb, default_storage_gb, category, tags, icon,
	is_popular, is_active, default_ports, default_env_vars, extensions, created_at, updated_at`

func scanTemplate(s scanner) (Template, error) {
	var t Template
	err := s.Scan(&t.ID, &t.Name, &t.DisplayName, &t.Description, &t.BaseImage,
		&t.DefaultCPU, &t.DefaultMemory, &t.DefaultStorage, &t.Category, jsonCol{&t.Tags}, &t.Icon,
		&t.IsPopular, &t.IsActive, jsonCol{&t.DefaultPorts}, jsonCol{&t.DefaultEnvVars}, jsonCol{&t.Extensions},
		timeCol{&t.CreatedAt}, timeCol{&t.UpdatedAt})
	return t, err
}

// EnsureTemplate inserts t unless a template with its name already exists.
// An existing one is never overwritten: operators may have edited it, and
// their edits win over the built-in defaults seeded at every start.
func (db *DB) EnsureTemplate(ctx context.Context, t Template) error {
	if t.ID == "" {
		t.ID = newID("tpl_")
	}
	t.CreatedAt = now()
	t.UpdatedAt = t.CreatedAt
	var jsonArgs [4]any
	for i, v := range []any{t.Tags, t.DefaultPorts, t.DefaultEnvVars, t.Extensions} {
		a, err := jsonArg(v)
		if err != nil {
			return wrapErr("ensure template", err)
		}
		jsonArgs[i] = a
	}
	_, err := db.exec(ctx, db.writer, db.q(`
		INSERT INTO templates (`+templateColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`),
		t.ID, t.Name, t.DisplayName, t.Description, t.BaseImage,
		t.DefaultCPU, t.DefaultMemory, t.DefaultStorage, t.Category, jsonArgs[0], t.Icon,
		t.IsPopular, t.IsActive, jsonArgs[1], jsonArgs[2], jsonArgs[3],
		db.timeArg(t.CreatedAt), db.timeArg(t.UpdatedAt))
	return wrapErr("ensure template", err)
}

// ListTemplates returns the active templates, popular ones first, then by
// name.
func (db *DB) ListTemplates(ctx context.Context) ([]Template, error) {
	rows, err := db.query(ctx, db.reader,
		`SELECT `+templateColumns+` FROM templates WHERE is_active ORDER BY is_popular DESC, name`)
	out, err := collect(rows, err, scanTemplate)
	return out, wrapErr("list templates", err)
}

// GetTemplate returns the active template with the given name; an inactive
// one is ErrNotFound, as if it did not exist.
func (db *DB) GetTemplate(ctx context.Context, name string) (Template, error) {
	t, err := scanTemplate(db.queryRow(ctx, db.reader, db.q(
		`SELECT `+templateColumns+` FROM templates WHERE name = ? AND is_active`), name))
	if err != nil {
		return Template{}, lookupErr("get template", err)
	}
	return t, nil
}

const instanceTypeColumns = `name, display_name, description, cpu_cores, memory_gb, storage_gb, sort_order,
	resources, node_selector, is_active`

func scanInstanceType(s scanner) (InstanceType, error) {
	var it InstanceType
	err := s.Scan(&it.Name, &it.DisplayName, &it.Description, &it.CPUCores, &it.MemoryGB, &it.StorageGB, &it.SortOrder,
		jsonCol{&it.Resources}, jsonCol{&it.NodeSelector}, &it.IsActive)
	return it, err
}

// instanceTypeArgs are it's values in instanceTypeColumns' order.
func instanceTypeArgs(it InstanceType) ([]any, error) {
	res, err := jsonArg(it.Resources)
	if err != nil {
		return nil, err
	}
	sel, err := jsonArg(it.NodeSelector)
	if err != nil {
		return nil, err
	}
	return []any{it.Name, it.DisplayName, it.Description, it.CPUCores, it.MemoryGB, it.StorageGB, it.SortOrder,
		res, sel, it.IsActive}, nil
}

// EnsureInstanceType inserts it unless one with its name already exists,
// which is left as it is (see EnsureTemplate).
func (db *DB) EnsureInstanceType(ctx context.Context, it InstanceType) error {
	args, err := instanceTypeArgs(it)
	if err != nil {
		return wrapErr("ensure instance type", err)
	}
	_, err = db.exec(ctx, db.writer, db.q(`
		INSERT INTO instance_types (`+instanceTypeColumns+`) VALUES (`+placeholders(len(args))+`)
		ON CONFLICT (name) DO NOTHING`), args...)
	return wrapErr("ensure instance type", err)
}

// CreateInstanceType stores a new instance type; one with the same name
// (active or not) is ErrConflict.
func (db *DB) CreateInstanceType(ctx context.Context, it InstanceType) error {
	args, err := instanceTypeArgs(it)
	if err != nil {
		return wrapErr("create instance type", err)
	}
	_, err = db.exec(ctx, db.writer, db.q(`
		INSERT INTO instance_types (`+instanceTypeColumns+`) VALUES (`+placeholders(len(args))+`)`), args...)
	return wrapErr("create instance type", err)
}

// UpdateInstanceType changes the instance type name by fn, in one
// transaction, and returns it as it was and as it is now. fn's error is
// returned as it is, and nothing is changed. fn may not rename it.
// Environments made from the type keep what they copied of it.
func (db *DB) UpdateInstanceType(ctx context.Context, name string, fn func(*InstanceType) error) (before, after InstanceType, err error) {
	var fnErr error
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		it, err := scanInstanceType(tx.QueryRowContext(ctx, db.q(
			`SELECT `+instanceTypeColumns+` FROM instance_types WHERE name = ?`), name))
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		before = it
		next := it
		next.Resources, next.NodeSelector = maps.Clone(it.Resources), maps.Clone(it.NodeSelector)
		if err := fn(&next); err != nil {
			fnErr = err
			return err
		}
		if next.Name != name {
			return fmt.Errorf("instance type %s cannot be renamed", name)
		}
		args, err := instanceTypeArgs(next)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, db.q(`
			UPDATE instance_types SET display_name = ?, description = ?, cpu_cores = ?, memory_gb = ?, storage_gb = ?,
				sort_order = ?, resources = ?, node_selector = ?, is_active = ?
			WHERE name = ?`), append(args[1:], name)...)
		if err != nil {
			return err
		}
		after = next
		return nil
	})
	if fnErr != nil {
		return InstanceType{}, InstanceType{}, fnErr
	}
	if err != nil {
		return InstanceType{}, InstanceType{}, wrapErr("update instance type "+name, err)
	}
	return before, after, nil
}

// ListInstanceTypes returns the active instance types (with all, the
// retired ones too) by SortOrder, then name.
func (db *DB) ListInstanceTypes(ctx context.Context, all bool) ([]InstanceType, error) {
	where := ` WHERE is_active`
	if all {
		where = ``
	}
	rows, err := db.query(ctx, db.reader,
		`SELECT `+instanceTypeColumns+` FROM instance_types`+where+` ORDER BY sort_order, name`)
	out, err := collect(rows, err, scanInstanceType)
	return out, wrapErr("list instance types", err)
}

// GetInstanceType returns the instance type with the given name, active or
// retired (IsActive says), or ErrNotFound.
func (db *DB) GetInstanceType(ctx context.Context, name string) (InstanceType, error) {
	it, err := scanInstanceType(db.queryRow(ctx, db.reader, db.q(
		`SELECT `+instanceTypeColumns+` FROM instance_types WHERE name = ?`), name))
	if err != nil {
		return InstanceType{}, lookupErr("get instance type", err)
	}
	return it, nil
}
