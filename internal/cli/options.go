package cli

// The machinery of dev8 server's option table (server.go): what one option
// declares, the kinds of value an option holds, and how the environment and
// the command line reach them.

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/internal/replicas"
)

// serverOption is one setting of dev8 server, declared once: its flag, its
// environment variable, its default (the value's initial state) and what it
// means. --help, the environment and the configuration reference
// (internal/web/docs/configuration.md, generated) all read it from here.
type serverOption struct {
	flag string
	env  string
	// help says what the option means. `Code` spans are kept in the
	// reference and lose their backquotes in --help.
	help string
	// defaultDoc (Markdown) describes a default that is not a fixed value:
	// one derived at start from other settings or from the host. --help
	// adds it after the variable.
	defaultDoc string
	// doc (Markdown) is more for the reference only: links and details.
	doc   string
	value pflag.Value
}

// usage is the flag's --help text: help, then the variable and the
// described default where pflag has no value to show.
func (o serverOption) usage() string {
	tail := o.env
	if o.defaultDoc != "" && o.value.String() == "" {
		tail += "; default " + o.defaultDoc
	}
	return strings.ReplaceAll(o.help+" ("+tail+")", "`", "")
}

// envSetter is a value that reads its environment variable differently from
// one use of its flag (a repeatable flag's variable holds the whole list).
type envSetter interface {
	setEnv(string) error
}

// applyEnv sets each option whose variable lookup finds (an empty variable
// counts as unset), before the flags are registered, so that the variable
// becomes the flag's default and an explicit flag still wins. Every bad
// value is reported, each naming its variable.
func applyEnv(opts []serverOption, lookup func(string) (string, bool)) error {
	var errs []error
	for _, o := range opts {
		v, ok := lookup(o.env)
		if !ok || v == "" {
			continue
		}
		set := o.value.Set
		if e, ok := o.value.(envSetter); ok {
			set = e.setEnv
		}
		if err := set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q (--%s): %w", o.env, v, o.flag, err))
		}
	}
	return errors.Join(errs...)
}

// registerFlags adds every option to flags; a bad value on the command line
// is refused by pflag naming the flag and the value's error.
func registerFlags(flags *pflag.FlagSet, opts []serverOption) {
	for _, o := range opts {
		f := flags.VarPF(o.value, o.flag, "", o.usage())
		if o.value.Type() == "bool" {
			// --flag alone means true, as for pflag's own bools.
			f.NoOptDefVal = "true"
		}
	}
}

// setting is an option's value: text turned into a T by parse, which
// refuses what the option cannot take with a "want …" error.
type setting[T any] struct {
	dst    *T
	text   string
	kind   string // the word --help shows for the value
	format func(T) string
	parse  func(string) (T, error)
}

func newSetting[T any](dst *T, def T, kind string, format func(T) string, parse func(string) (T, error)) *setting[T] {
	*dst = def
	return &setting[T]{dst: dst, text: format(def), kind: kind, format: format, parse: parse}
}

func (s *setting[T]) String() string { return s.text }
func (s *setting[T]) Type() string   { return s.kind }

func (s *setting[T]) Set(text string) error {
	v, err := s.parse(text)
	if err != nil {
		return err
	}
	*s.dst, s.text = v, s.format(v)
	return nil
}

func identity(s string) string { return s }

func stringValue(dst *string, def string) *setting[string] {
	return newSetting(dst, def, "string", identity, func(s string) (string, error) { return s, nil })
}

// intValue takes a whole number of at least least.
func intValue(dst *int, def, least int) *setting[int] {
	return newSetting(dst, def, "int", strconv.Itoa, func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < least {
			return 0, fmt.Errorf("want a whole number of at least %d", least)
		}
		return n, nil
	})
}

// floatValue takes a finite number, not negative.
func floatValue(dst *float64, def float64) *setting[float64] {
	format := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	return newSetting(dst, def, "float", format, func(s string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, errors.New("want a number of at least 0, such as 0.5")
		}
		return f, nil
	})
}

// boolValue takes true or false (also 1, 0, yes, no, on, off).
func boolValue(dst *bool, def bool) *setting[bool] {
	return newSetting(dst, def, "bool", strconv.FormatBool, func(s string) (bool, error) {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "1", "yes", "on":
			return true, nil
		case "false", "0", "no", "off":
			return false, nil
		}
		return false, errors.New("want true or false")
	})
}

// durationValue takes a Go duration, not negative.
func durationValue(dst *time.Duration, def time.Duration) *setting[time.Duration] {
	return newSetting(dst, def, "duration", shortDuration, func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return 0, errors.New("want a duration such as 90s, 15m or 2h30m, not negative")
		}
		return d, nil
	})
}

// shortDuration is d as time.Duration.String writes it, without the zero
// units it ends with: 15m, not 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// urlValue takes an absolute http(s) URL without query or fragment, or
// nothing (then a default applies).
func urlValue(dst *string) *setting[string] {
	return newSetting(dst, "", "url", identity, func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return "", errors.New("want an http(s) URL such as https://dev8.example.com")
		}
		return s, nil
	})
}

// replicaURLValue takes a replica URL: http(s)://host[:port] and nothing
// more (the relay's path is the server's own).
func replicaURLValue(dst *string) *setting[string] {
	return newSetting(dst, "", "url", identity, func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		return replicas.CheckURL(s)
	})
}

// addrValue takes a listen address, host:port (the host may be empty); an
// optional one may be empty too, which turns its listener off.
func addrValue(dst *string, def string, optional bool) *setting[string] {
	return newSetting(dst, def, "host:port", identity, func(s string) (string, error) {
		if s == "" && optional {
			return "", nil
		}
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return "", errors.New("want an address host:port, such as 127.0.0.1:3000 or :3000")
		}
		return s, nil
	})
}

// choiceValue takes one of choices, in any case.
func choiceValue(dst *string, def string, choices ...string) *setting[string] {
	return newSetting(dst, def, "string", identity, func(s string) (string, error) {
		for _, c := range choices {
			if strings.EqualFold(s, c) {
				return c, nil
			}
		}
		return "", fmt.Errorf("want %s", strings.Join(choices, " or "))
	})
}

// logLevelValue takes a slog level: debug, info, warn or error.
func logLevelValue(dst *string, def string) *setting[string] {
	return newSetting(dst, def, "string", identity, func(s string) (string, error) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(s)); err != nil {
			return "", errors.New("want debug, info, warn or error")
		}
		return s, nil
	})
}

// listValue takes a comma-separated list that parse checks and turns into
// a T (origins, proxies, image patterns); empty is none.
func listValue[T any](dst *T, want string, parse func(string) (T, error)) *setting[string] {
	var raw string
	return newSetting(&raw, "", "list", identity, func(s string) (string, error) {
		v, err := parse(s)
		if err != nil {
			return "", fmt.Errorf("want %s: %w", want, err)
		}
		*dst = v
		return s, nil
	})
}

// parseList splits a comma-separated list, dropping empty items.
func parseList(s string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out, nil
}

// parseLabels parses comma-separated key=value pairs.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", p)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// parseResources parses comma-separated name=quantity extended resources
// and checks them as Kubernetes would (internal/placement).
func parseResources(s string) (map[string]string, error) {
	res, err := parseLabels(s)
	if err != nil {
		return nil, err
	}
	return res, placement.CheckResources(res)
}

// parseNodeSelector parses comma-separated key=value node labels and
// checks them as Kubernetes would.
func parseNodeSelector(s string) (map[string]string, error) {
	sel, err := parseLabels(s)
	if err != nil {
		return nil, err
	}
	return sel, placement.CheckNodeSelector(sel)
}

// parseRuntimes splits a comma-separated list of runtime names (the server
// checks that it knows them).
func parseRuntimes(s string) ([]string, error) {
	return parseList(strings.ToLower(s))
}

// repeatedValue is a repeatable flag whose variable holds the same items
// comma-separated; parse checks the whole list and turns it into a T. The
// first use of the flag replaces what the variable gave.
type repeatedValue[T any] struct {
	dst      *T
	items    []string
	fromFlag bool
	want     string
	parse    func([]string) (T, error)
}

func newRepeatedValue[T any](dst *T, want string, parse func([]string) (T, error)) *repeatedValue[T] {
	return &repeatedValue[T]{dst: dst, want: want, parse: parse}
}

func (r *repeatedValue[T]) String() string { return strings.Join(r.items, ",") }
func (r *repeatedValue[T]) Type() string   { return "stringArray" }

func (r *repeatedValue[T]) Set(s string) error {
	items := []string{s}
	if r.fromFlag {
		items = append(append([]string(nil), r.items...), s)
	}
	if err := r.use(items); err != nil {
		return err
	}
	r.fromFlag = true
	return nil
}

func (r *repeatedValue[T]) setEnv(s string) error {
	items, _ := parseList(s)
	return r.use(items)
}

func (r *repeatedValue[T]) use(items []string) error {
	v, err := r.parse(items)
	if err != nil {
		return fmt.Errorf("want %s: %w", r.want, err)
	}
	*r.dst, r.items = v, items
	return nil
}

// ServerOption is how the configuration reference sees one option of dev8
// server; the fields are Markdown.
type ServerOption struct {
	Flag, Env, Default, Help string
}

// ServerOptions lists dev8 server's options as they are with nothing set,
// for the configuration reference (go run ./internal/web/genconfig).
func ServerOptions() []ServerOption {
	var out []ServerOption
	for _, o := range serverOptions(new(serverSettings)) {
		def := o.defaultDoc
		switch {
		case def != "":
		case o.value.String() != "":
			def = "`" + o.value.String() + "`"
		default:
			def = "(none)"
		}
		help := o.help
		if o.doc != "" {
			help += "; " + o.doc
		}
		out = append(out, ServerOption{Flag: o.flag, Env: o.env, Default: def, Help: help})
	}
	return out
}
