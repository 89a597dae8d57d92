package kubernetes

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseTolerations(t *testing.T) {
	t.Parallel()
	got, err := ParseTolerations(" nvidia.com/gpu:NoSchedule, dedicated=gpu:NoExecute,spot,team=ml ,")
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.Toleration{
		{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoExecute},
		{Key: "spot", Operator: corev1.TolerationOpExists},
		{Key: "team", Operator: corev1.TolerationOpEqual, Value: "ml"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got, err := ParseTolerations(""); err != nil || got != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	for in, wantErr := range map[string]string{
		"nvidia.com/gpu:NoScheduled": "effect",
		"key=bad value:NoSchedule":   "value",
		":NoSchedule":                "key",
		"=x":                         "key",
		"a b":                        "key",
	} {
		if _, err := ParseTolerations(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want one about the %s", in, err, wantErr)
		}
	}
}
