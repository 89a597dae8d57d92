package placement

import (
	"reflect"
	"strings"
	"testing"
)

func TestCheckResources(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		res  map[string]string
		want string // "" = valid; else a part of the error
	}{
		{map[string]string{"nvidia.com/gpu": "1"}, ""},
		{map[string]string{"nvidia.com/gpu": "2", "amd.com/gpu": "1", "example.com/fpga-x": "1024"}, ""},
		{nil, ""},
		{map[string]string{"gpu": "1"}, "has a domain"},
		{map[string]string{"cpu": "1"}, "has a domain"},
		{map[string]string{"hugepages-2Mi": "1Gi"}, "has a domain"},
		{map[string]string{"kubernetes.io/foo": "1"}, "kubernetes.io domain"},
		{map[string]string{"requests.example.com/x": "1"}, "must not start"},
		{map[string]string{"nvidia com/gpu": "1"}, "not a valid resource name"},
		{map[string]string{"-bad.com/gpu": "1"}, "not a valid resource name"},
		{map[string]string{"nvidia.com/gpu": "one"}, "not a quantity"},
		{map[string]string{"nvidia.com/gpu": "0"}, "whole number"},
		{map[string]string{"nvidia.com/gpu": "-1"}, "whole number"},
		{map[string]string{"nvidia.com/gpu": "500m"}, "whole number"},
		{map[string]string{"nvidia.com/gpu": "1025"}, "whole number"},
		{map[string]string{"nvidia.com/gpu": "1Ki"}, ""},
	} {
		err := CheckResources(tc.res)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.res, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one saying %q", tc.res, err, tc.want)
		}
	}
	many := map[string]string{}
	for i := range MaxResources + 1 {
		many["example.com/r"+strings.Repeat("x", i)] = "1"
	}
	if err := CheckResources(many); err == nil {
		t.Error("too many resources accepted")
	}
}

func TestCheckNodeSelector(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sel map[string]string
		ok  bool
	}{
		{map[string]string{"pool": "gpu", "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}, true},
		{map[string]string{"pool": ""}, true},
		{map[string]string{"": "gpu"}, false},
		{map[string]string{"pool": "gpu nodes"}, false},
		{map[string]string{"bad key": "x"}, false},
		{map[string]string{"pool": strings.Repeat("a", 64)}, false},
	} {
		if err := CheckNodeSelector(tc.sel); (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok %v", tc.sel, err, tc.ok)
		}
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	got := Merge(map[string]string{"a": "1", "b": "1"}, map[string]string{"b": "2", "c": "3"})
	if !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2", "c": "3"}) {
		t.Errorf("merge: %v", got)
	}
	if Merge(nil, map[string]string{}) != nil {
		t.Error("merge of empties is not nil")
	}
	if d := Describe(got); d != "a=1, b=2, c=3" {
		t.Errorf("describe: %q", d)
	}
}
