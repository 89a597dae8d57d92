package kubernetes

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ParseTolerations parses comma-separated tolerations in kubectl taint's
// syntax, each one tolerating the taints it names:
//
//	key=value:Effect   the taint key=value with that effect (Equal)
//	key=value          the taint key=value with any effect
//	key:Effect         any taint on key with that effect (Exists)
//	key                any taint on key (Exists)
//
// Effect is NoSchedule, PreferNoSchedule or NoExecute. An empty string is
// no tolerations.
func ParseTolerations(s string) ([]corev1.Toleration, error) {
	var out []corev1.Toleration
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		t, err := parseToleration(item)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func parseToleration(item string) (corev1.Toleration, error) {
	kv, effect, hasEffect := strings.Cut(item, ":")
	key, value, hasValue := strings.Cut(kv, "=")
	t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return t, fmt.Errorf("toleration %q: key %q is not a taint key: %s", item, key, strings.Join(errs, "; "))
	}
	if hasValue {
		if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
			return t, fmt.Errorf("toleration %q: value %q is not a taint value: %s", item, value, strings.Join(errs, "; "))
		}
		t.Operator, t.Value = corev1.TolerationOpEqual, value
	}
	if hasEffect {
		switch e := corev1.TaintEffect(effect); e {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
			t.Effect = e
		default:
			return t, fmt.Errorf("toleration %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", item, effect)
		}
	}
	return t, nil
}
