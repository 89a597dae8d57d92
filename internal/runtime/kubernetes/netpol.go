package kubernetes

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"dev8.dev/dev8/internal/runtime"
)

// NetworkPolicyName is the name of the installation's NetworkPolicy.
func (r *Runtime) NetworkPolicyName() string { return "dev8-workspaces-" + r.cfg.Installation }

// networkPolicy selects the installation's workspace pods: nothing may
// connect to them (their supervisor dials out; no workspace reaches
// another), and they may connect to anything but the denied ranges, to
// the Dev8 server (ServerEgress, ServerPodLabels) and to the cluster's DNS.
func (r *Runtime) networkPolicy() (*networkingv1.NetworkPolicy, error) {
	var v4, v6 []string
	for _, c := range r.cfg.DenyEgress {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("denied egress range %q: %w", c, err)
		}
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked().String())
		} else {
			v6 = append(v6, p.Masked().String())
		}
	}
	internet := []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: v4}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: v6}},
	}
	egress := []networkingv1.NetworkPolicyEgressRule{{To: internet}}
	var server []networkingv1.NetworkPolicyPeer
	for _, c := range r.cfg.ServerEgress {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			if a, aerr := netip.ParseAddr(c); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fmt.Errorf("server address %q: %w", c, err)
			}
		}
		server = append(server, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: p.Masked().String()}})
	}
	if len(r.cfg.ServerPodLabels) > 0 {
		namespaces := &metav1.LabelSelector{}
		if r.cfg.ServerNamespace != "" {
			// Another namespace's pods with the same labels are not
			// the server.
			namespaces.MatchLabels = map[string]string{corev1.LabelMetadataName: r.cfg.ServerNamespace}
		}
		server = append(server, networkingv1.NetworkPolicyPeer{
			NamespaceSelector: namespaces,
			PodSelector:       &metav1.LabelSelector{MatchLabels: r.cfg.ServerPodLabels},
		})
	}
	if len(server) > 0 {
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{To: server})
	}
	// A policy's ports are the DNS pods' own, after the Service's
	// translation: port 53 where they listen on it (AKS, EKS, GKE), and
	// the container ports named dns and dns-tcp, as CoreDNS's and
	// kube-dns' manifests name them, whatever their number (a CoreDNS
	// that runs without the capability to bind port 53 listens higher,
	// e.g. the test cluster's on 1053). With 53 alone, such a DNS is
	// denied once the policy applies to the pod: a lookup made in the
	// pod's first moment succeeds, every later one is refused.
	dns := intstr.FromInt32(53)
	dnsUDP, dnsTCP := intstr.FromString("dns"), intstr.FromString("dns-tcp")
	egress = append(egress, networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{
			{Protocol: ptr.To(corev1.ProtocolUDP), Port: &dns},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: &dns},
			{Protocol: ptr.To(corev1.ProtocolUDP), Port: &dnsUDP},
			{Protocol: ptr.To(corev1.ProtocolTCP), Port: &dnsTCP},
		},
	})
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:      r.NetworkPolicyName(),
			Namespace: r.cfg.Namespace,
			Labels:    map[string]string{runtime.LabelManaged: "true", runtime.LabelInstallation: r.cfg.Installation},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{
				runtime.LabelManaged: "true", runtime.LabelInstallation: r.cfg.Installation,
			}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{},
			Egress:      egress,
		},
	}, nil
}

// ensureNetworkPolicy makes the NetworkPolicy, or puts it back as this
// configuration says, once per Runtime.
func (r *Runtime) ensureNetworkPolicy(ctx context.Context) error {
	r.mu.Lock()
	done := r.netpolSet
	r.mu.Unlock()
	if done {
		return nil
	}
	want, err := r.networkPolicy()
	if err != nil {
		return runtime.Permanent(err)
	}
	api := r.cli.NetworkingV1().NetworkPolicies(r.cfg.Namespace)
	have, err := api.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("network policy: %w", classify(err))
		}
	case err != nil:
		return fmt.Errorf("network policy: %w", classify(err))
	case !reflect.DeepEqual(have.Spec, want.Spec):
		have.Spec = want.Spec
		if _, err := api.Update(ctx, have, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("network policy: %w", classify(err))
		}
	}
	r.mu.Lock()
	r.netpolSet = true
	r.mu.Unlock()
	return nil
}
