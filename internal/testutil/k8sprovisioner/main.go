// Command k8sprovisioner gives the test cluster of scripts/k8s-test-cluster.sh
// dynamic volumes: for each claim of its storage class (dev8-local, the
// cluster's default) it makes a directory under its root on the node, world
// writable as a new disk's root is to its pod's fsGroup, and a `local`
// PersistentVolume bound to the claim; when the claim is deleted it removes
// both. It runs on the node (the script starts it with the cluster), watches
// through informers, and is for that single-node test cluster only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

// Provisioner is the name claims of the class are provisioned by.
const Provisioner = "dev8.dev/test-provisioner"

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster")
	root := flag.String("root", "/var/lib/dev8-k8s/volumes", "where volumes' directories go")
	node := flag.String("node", "dev8-node", "the node's name (volumes are local to it)")
	class := flag.String("class", "dev8-local", "the storage class to provision")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *kubeconfig, *root, *node, *class); err != nil {
		log.Error("k8sprovisioner", "err", err)
		os.Exit(1)
	}
}

type provisioner struct {
	cli               kubernetes.Interface
	log               *slog.Logger
	root, node, class string
}

func run(ctx context.Context, log *slog.Logger, kubeconfig, root, node, class string) error {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cli, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	p := &provisioner{cli: cli, log: log, root: root, node: node, class: class}
	factory := informers.NewSharedInformerFactory(cli, 0)
	claims := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumes := factory.Core().V1().PersistentVolumes().Informer()
	// One queue of keys: "claim ns/name" or "volume name".
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	add := func(prefix string) func(any) {
		return func(obj any) {
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				q.Add(prefix + key)
			}
		}
	}
	for inf, prefix := range map[cache.SharedIndexInformer]string{claims: "claim ", volumes: "volume "} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: add(prefix), UpdateFunc: func(_, n any) { add(prefix)(n) },
		}); err != nil {
			return err
		}
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), claims.HasSynced, volumes.HasSynced) {
		return errors.New("informers did not sync")
	}
	log.Info("provisioning", "class", class, "root", root)
	go func() {
		<-ctx.Done()
		q.ShutDown()
	}()
	for {
		key, shutdown := q.Get()
		if shutdown {
			return nil
		}
		var err error
		switch {
		case len(key) > 6 && key[:6] == "claim ":
			err = p.claim(ctx, claims, key[6:])
		case len(key) > 7 && key[:7] == "volume ":
			err = p.volume(ctx, volumes, key[7:])
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("retrying", "key", key, "err", err)
			q.AddRateLimited(key)
		} else {
			q.Forget(key)
		}
		q.Done(key)
	}
}

// claim provisions a pending claim of the class.
func (p *provisioner) claim(ctx context.Context, inf cache.SharedIndexInformer, key string) error {
	obj, ok, err := inf.GetStore().GetByKey(key)
	if err != nil || !ok {
		return err
	}
	c := obj.(*corev1.PersistentVolumeClaim)
	if c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != p.class || c.Spec.VolumeName != "" ||
		c.Status.Phase != corev1.ClaimPending || c.DeletionTimestamp != nil {
		return nil
	}
	name := "pvc-" + string(c.UID)
	dir := filepath.Join(p.root, name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		return err
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": Provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: c.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   c.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              p.class,
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: c.Namespace, Name: c.Name, UID: c.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{p.node}}},
			}}}},
		},
	}
	if _, err := p.cli.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create volume for %s: %w", key, err)
	}
	p.log.Info("provisioned", "claim", key, "volume", name)
	return nil
}

// volume removes a released volume of ours and its directory.
func (p *provisioner) volume(ctx context.Context, inf cache.SharedIndexInformer, key string) error {
	obj, ok, err := inf.GetStore().GetByKey(key)
	if err != nil || !ok {
		return err
	}
	v := obj.(*corev1.PersistentVolume)
	if v.Annotations["pv.kubernetes.io/provisioned-by"] != Provisioner || v.Spec.Local == nil ||
		(v.Status.Phase != corev1.VolumeReleased && v.Status.Phase != corev1.VolumeFailed) {
		return nil
	}
	if filepath.Dir(v.Spec.Local.Path) != p.root {
		return nil
	}
	if err := os.RemoveAll(v.Spec.Local.Path); err != nil {
		return err
	}
	if err := p.cli.CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	p.log.Info("removed", "volume", v.Name)
	return nil
}
