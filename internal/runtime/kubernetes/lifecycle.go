package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/internal/runtime"
)

// AnnotationRunning on an instance's Secret says Dev8 wants its pod to run
// (set by Start, removed by Stop): a pod missing while it is set was
// deleted behind Dev8's back, which survives a restart of the server.
const AnnotationRunning = "dev8.dev/running"

// AnnotationHomeSeeded on an instance's Secret is the UID of the volume
// claim whose home a pod of the instance seeded from the image (a pod ran,
// so its dev8-home init container finished). Later starts on that claim
// leave the seeding out: every init container costs a container start and
// the kubelet noticing its exit (its relist, once a second), ~1–2 s of
// each start. A new claim has a new UID, and is seeded again.
const AnnotationHomeSeeded = "dev8.dev/home-seeded"

// AnnotationDialedIn on an instance's Secret names the pod whose
// supervisor dialed this server in before the kubelet reported the pod
// running (Config.SupervisorConnected): that pod runs (see live).
const AnnotationDialedIn = "dev8.dev/dialed-in"

// Create implements runtime.Runtime.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	id := spec.EnvironmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: create: %w", err))
	}
	spec.Image = r.imageRef(spec.Image)
	if r.cfg.AgentURL != "" {
		spec.AgentURL = r.cfg.AgentURL
	}
	if spec.Image == "" {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: create %s: no image in the spec and no default image", id))
	}
	if r.cfg.SupervisorFrom == SupervisorFromServer && spec.AgentURL == "" {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: create %s: the supervisor is fetched from the server (--kubernetes-supervisor-from server), but the workspace is given no server URL", id))
	}
	if _, err := r.resources(spec); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: create %s: %w", id, err))
	}
	if err := placement.CheckNodeSelector(spec.NodeSelector); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: create %s: %w", id, err))
	}
	if err := r.ensureNetworkPolicy(ctx); err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: %w", id, err)
	}
	want, err := r.instanceSecret(spec)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: %w", id, err)
	}
	secrets := r.cli.CoreV1().Secrets(r.cfg.Namespace)
	name := ObjectName(id)
	// The pod, once looked up (Create before every start finds the Secret,
	// and needs the pod's state once).
	var pod *corev1.Pod
	podKnown := false
	sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		sec, err = secrets.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: created meanwhile by another call: %w", id, err)
		}
		if err != nil {
			return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: secret: %w", id, classify(err))
		}
	case err != nil:
		return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: secret: %w", id, classify(err))
	case !r.ours(sec.Labels, id):
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: create %s: a secret named %s exists that this Dev8 did not make", id, name))
	default:
		if pod, err = r.livePod(ctx, id); err != nil {
			return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: %w", id, err)
		}
		podKnown = true
		if pod != nil && live(sec, pod) {
			// Running: nothing to record until the next start.
			return r.instance(sec, pod), nil
		}
		// The spec of the next start (the server's URL and this start's
		// token may be new); the annotation stays as it was.
		sec.Data = want.Data
		if sec, err = secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: update secret: %w", id, classify(err))
		}
	}

	// The volume claim is looked for first: when it is not there (a first
	// Create, one removed while the workspace was stopped, a new cluster)
	// the workspace starts empty, and the caller is told so.
	claims := r.cli.CoreV1().PersistentVolumeClaims(r.cfg.Namespace)
	pvc, err := claims.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || (err == nil && pvc.DeletionTimestamp != nil):
		if err == nil {
			// Being deleted (by hand): wait for it to go, then make it anew.
			if err := r.awaitClaimGone(ctx, name, pvc.UID); err != nil {
				return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: %w", id, err)
			}
		}
		r.mu.Lock()
		r.newClaim[id] = true
		r.mu.Unlock()
		if _, err := claims.Create(ctx, r.claim(spec, sec), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: volume claim: %w", id, classify(err))
		}
	case err != nil:
		return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: volume claim: %w", id, classify(err))
	case !r.ours(pvc.Labels, id):
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: create %s: a volume claim named %s exists that this Dev8 did not make", id, name))
	}
	if !podKnown {
		if pod, err = r.livePod(ctx, id); err != nil {
			return runtime.Instance{}, fmt.Errorf("kubernetes: create %s: %w", id, err)
		}
	}
	inst := r.instance(sec, pod)
	r.mu.Lock()
	inst.StorageCreated = r.newClaim[id]
	delete(r.newClaim, id)
	r.mu.Unlock()
	return inst, nil
}

// awaitClaimGone waits for a claim being deleted to be gone.
func (r *Runtime) awaitClaimGone(ctx context.Context, name string, uid types.UID) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		pvc, err := r.cli.CoreV1().PersistentVolumeClaims(r.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && pvc.UID != uid) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("volume claim %s being deleted: %w", name, err)
		}
		// A claim has no informer here; its deletion waits on the pod
		// using it, which is gone already, so it takes a moment.
		select {
		case <-ctx.Done():
			return fmt.Errorf("volume claim %s is still being deleted: %w", name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Start implements runtime.Runtime.
func (r *Runtime) Start(ctx context.Context, environmentID string) (runtime.Instance, error) {
	id := environmentID
	if err := checkID(id); err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: start: %w", err))
	}
	sec, err := r.secret(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: start %s: %w", id, err)
	}
	spec, err := specOf(sec)
	if err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: start %s: %w", id, err))
	}
	pod, err := r.livePod(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: start %s: %w", id, err)
	}
	if pod != nil {
		if live(sec, pod) {
			return r.instance(sec, pod), nil
		}
		if ended(pod) || exited(pod) || pod.DeletionTimestamp != nil {
			// The last run's pod (exited, evicted) or one going: a start
			// makes a new one.
			if err := r.deletePod(ctx, id, 0); err != nil {
				return runtime.Instance{}, fmt.Errorf("kubernetes: start %s: %w", id, err)
			}
		}
	}
	r.mu.Lock()
	delete(r.stopped, id)
	r.mu.Unlock()
	if sec, err = r.setRunning(ctx, sec, true); err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: start %s: %w", id, err)
	}
	claim, err := r.claimUID(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("kubernetes: start %s: %w", id, err)
	}
	seed := claim == "" || sec.Annotations[AnnotationHomeSeeded] != string(claim)
	want, err := r.pod(spec, sec, seed)
	if err != nil {
		return runtime.Instance{}, runtime.Permanent(fmt.Errorf("kubernetes: start %s: %w", id, err))
	}
	// A supervisor that dials in from now on is this pod's (see
	// Config.SupervisorConnected): the last run's pod is gone.
	since := time.Now()
	made, err := r.cli.CoreV1().Pods(r.cfg.Namespace).Create(ctx, want, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		made = nil // an earlier try's: its supervisor may have dialed in before since
	case err != nil:
		return runtime.Instance{}, fmt.Errorf("kubernetes: start %s: pod: %w", id, classify(err))
	}
	pod, dialed, err := r.awaitRunning(ctx, id, spec.Image, made, since)
	if err == nil {
		sec, err = r.recordStart(ctx, sec, pod, dialed, seed, claim)
		if err != nil {
			// Unrecorded, a dial-in must not count: a restarted server
			// would take the pod for one that stopped. The kubelet's
			// word is a second away.
			r.log.Warn("record the started pod", "environment", id, "err", err)
			pod, _, err = r.awaitRunning(ctx, id, spec.Image, nil, since)
		}
	}
	if err != nil {
		// No compute left half-started: the next Start begins afresh.
		// Dev8 no longer wants it running, so the pod's going is no exit
		// (nor, to a restarted server, a deletion behind its back).
		r.mu.Lock()
		r.stopped[id] = true
		r.mu.Unlock()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if _, serr := r.setRunning(dctx, sec, false); serr != nil {
			r.log.Warn("record that a failed start's pod is not wanted", "environment", id, "err", serr)
		}
		if derr := r.deletePod(dctx, id, 0); derr != nil {
			r.log.Warn("remove the pod of a failed start", "environment", id, "err", derr)
		}
		cancel()
		return runtime.Instance{}, fmt.Errorf("kubernetes: start %s: %w", id, err)
	}
	return r.instance(sec, pod), nil
}

// recordStart records on the instance's Secret what a start learned, in
// one patch: the claim whose home it seeded (AnnotationHomeSeeded; not
// recording it only costs the next start the seeding again, so a failure
// is logged), and, when the pod's supervisor dialed in before the kubelet
// reported the pod running, that pod (AnnotationDialedIn: see live), whose
// failure is the error.
func (r *Runtime) recordStart(ctx context.Context, sec *corev1.Secret, pod *corev1.Pod, dialed, seed bool, claim types.UID) (*corev1.Secret, error) {
	annotations := map[string]string{}
	if seed && claim != "" {
		annotations[AnnotationHomeSeeded] = string(claim)
	}
	if dialed {
		annotations[AnnotationDialedIn] = string(pod.UID)
	}
	if len(annotations) == 0 {
		return sec, nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return sec, err
	}
	out, err := r.cli.CoreV1().Secrets(r.cfg.Namespace).Patch(ctx, sec.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil:
		return out, nil
	case dialed:
		return sec, err
	}
	r.log.Warn("record the seeded home", "environment", sec.Labels[runtime.LabelEnvironment], "err", err)
	return sec, nil
}

// claimUID is the UID of the environment's volume claim, "" when it has
// none of ours.
func (r *Runtime) claimUID(ctx context.Context, id string) (types.UID, error) {
	pvc, err := r.cli.CoreV1().PersistentVolumeClaims(r.cfg.Namespace).Get(ctx, ObjectName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && (!r.ours(pvc.Labels, id) || pvc.DeletionTimestamp != nil)) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("volume claim: %w", classify(err))
	}
	return pvc.UID, nil
}

// awaitRunning waits for the environment's pod to run, or to fail in a way
// waiting does not mend (see startFailure). A pod no node can take yet
// (no free GPU, no node with its labels) is waited for up to
// Config.ScheduleTimeout, since nodes may come (an autoscaler, a GPU
// freed); meanwhile the caller is told why (runtime.Report), and after it
// the start fails for good with the reason.
//
// made is the pod this start created at since (nil if it found one made
// before): it runs as soon as its supervisor dials in after since
// (Config.SupervisorConnected), even before the kubelet says so; dialedIn
// says that is how it ended.
func (r *Runtime) awaitRunning(ctx context.Context, id, image string, made *corev1.Pod, since time.Time) (pod *corev1.Pod, dialedIn bool, err error) {
	var unschedulableSince time.Time
	var reported string
	var dialed atomic.Bool
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if made != nil && r.cfg.SupervisorConnected != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.cfg.SupervisorConnected(wctx, id, since) == nil {
				dialed.Store(true)
				r.pods.wake()
			}
		}()
	}
	err = r.pods.waitFor(wctx, ObjectName(id), func(p *corev1.Pod) (bool, error) {
		if p == nil || !r.ours(p.Labels, id) {
			return false, nil // not seen yet
		}
		pod = p
		if running(p) {
			return true, nil
		}
		if err := startFailure(p, image); err != nil {
			return true, err
		}
		if dialed.Load() && p.UID == made.UID && !gone(p) {
			dialedIn = true
			return true, nil
		}
		if msg, ok := unschedulable(p); ok {
			why := schedulingProblem(p, msg)
			if unschedulableSince.IsZero() {
				unschedulableSince = time.Now()
				t := time.AfterFunc(r.cfg.ScheduleTimeout, func() {
					cancel(runtime.Permanent(fmt.Errorf("no node could run it within %s: %s", r.cfg.ScheduleTimeout, why)))
				})
				context.AfterFunc(wctx, func() { t.Stop() })
			}
			if why != reported {
				reported = why
				runtime.Report(ctx, fmt.Sprintf("waiting for a node that can run it (gives up %s after it was found unschedulable): %s",
					r.cfg.ScheduleTimeout, why))
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, false, err
	}
	return pod, dialedIn, nil
}

// live: pod runs its workspace. The kubelet says so (running), or, before
// it does, a Start recorded on the instance's Secret sec that the pod's
// supervisor dialed in (AnnotationDialedIn, kept across restarts of the
// server) and nothing says the pod is ending.
func live(sec *corev1.Secret, pod *corev1.Pod) bool {
	if running(pod) {
		return true
	}
	return !gone(pod) && sec != nil && sec.Annotations[AnnotationDialedIn] == string(pod.UID) && pod.UID != ""
}

// gone: p is ending or has ended.
func gone(p *corev1.Pod) bool { return p.DeletionTimestamp != nil || ended(p) || exited(p) }

// Stop implements runtime.Runtime.
func (r *Runtime) Stop(ctx context.Context, environmentID string) error {
	id := environmentID
	if err := checkID(id); err != nil {
		return runtime.Permanent(fmt.Errorf("kubernetes: stop: %w", err))
	}
	r.mu.Lock()
	r.stopped[id] = true
	r.mu.Unlock()
	if sec, err := r.secret(ctx, id); err == nil {
		if _, err := r.setRunning(ctx, sec, false); err != nil {
			return fmt.Errorf("kubernetes: stop %s: %w", id, err)
		}
	} else if !errors.Is(err, errNoInstance) {
		return fmt.Errorf("kubernetes: stop %s: %w", id, err)
	}
	if err := r.deletePod(ctx, id, int64(r.cfg.StopTimeout.Seconds())); err != nil {
		return fmt.Errorf("kubernetes: stop %s: %w", id, err)
	}
	return nil
}

// Delete implements runtime.Runtime.
func (r *Runtime) Delete(ctx context.Context, environmentID string) error {
	id := environmentID
	if err := checkID(id); err != nil {
		return runtime.Permanent(fmt.Errorf("kubernetes: delete: %w", err))
	}
	r.mu.Lock()
	r.stopped[id] = true
	delete(r.newClaim, id)
	r.mu.Unlock()
	// The pod first (quickly: the workspace is going), so the volume is
	// free to go at once; the Secret last, as it is what says an instance
	// exists: a Delete cut short is found and finished by the next.
	if err := r.deletePod(ctx, id, 1); err != nil {
		return fmt.Errorf("kubernetes: delete %s: %w", id, err)
	}
	name := ObjectName(id)
	background := metav1.DeletePropagationBackground
	claims := r.cli.CoreV1().PersistentVolumeClaims(r.cfg.Namespace)
	if pvc, err := claims.Get(ctx, name, metav1.GetOptions{}); err == nil && r.ours(pvc.Labels, id) {
		err := claims.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pvc.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("kubernetes: delete %s: volume claim: %w", id, classify(err))
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete %s: volume claim: %w", id, classify(err))
	}
	secrets := r.cli.CoreV1().Secrets(r.cfg.Namespace)
	if sec, err := secrets.Get(ctx, name, metav1.GetOptions{}); err == nil && r.ours(sec.Labels, id) {
		err := secrets.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &background, Preconditions: &metav1.Preconditions{UID: &sec.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("kubernetes: delete %s: secret: %w", id, classify(err))
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete %s: secret: %w", id, classify(err))
	}
	return nil
}

// deletePod deletes the environment's pod, if it has one of ours, with
// grace seconds to stop, and waits until it is gone.
func (r *Runtime) deletePod(ctx context.Context, id string, grace int64) error {
	pods := r.cli.CoreV1().Pods(r.cfg.Namespace)
	name := ObjectName(id)
	p, err := pods.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pod: %w", classify(err))
	}
	if !r.ours(p.Labels, id) {
		return nil
	}
	uid := p.UID
	if p.DeletionTimestamp == nil {
		err = pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(grace), Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod: %w", classify(err))
		}
	}
	// Gone when the informer no longer has it; confirmed by the API (the
	// informer may not have seen a pod created a moment ago).
	wctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+time.Minute)
	defer cancel()
	for {
		err := r.pods.waitFor(wctx, name, func(p *corev1.Pod) (bool, error) { return p == nil || p.UID != uid, nil })
		if err != nil {
			return fmt.Errorf("pod %s did not go away: %w", name, err)
		}
		p, err := pods.Get(wctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && p.UID != uid) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pod: %w", classify(err))
		}
		// The API still has it: the informer was behind; wait for news.
		select {
		case <-r.pods.signal():
		case <-wctx.Done():
			return fmt.Errorf("pod %s did not go away: %w", name, wctx.Err())
		}
	}
}

// errNoInstance: the environment has no Secret of ours.
var errNoInstance = errors.New("no such instance")

// secret is the environment's Secret, or errNoInstance.
func (r *Runtime) secret(ctx context.Context, id string) (*corev1.Secret, error) {
	sec, err := r.cli.CoreV1().Secrets(r.cfg.Namespace).Get(ctx, ObjectName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && !r.ours(sec.Labels, id)) {
		return nil, errNoInstance
	}
	if err != nil {
		return nil, fmt.Errorf("secret: %w", classify(err))
	}
	return sec, nil
}

// setRunning records whether Dev8 wants the pod to run (AnnotationRunning).
func (r *Runtime) setRunning(ctx context.Context, sec *corev1.Secret, on bool) (*corev1.Secret, error) {
	if (sec.Annotations[AnnotationRunning] == "true") == on {
		return sec, nil
	}
	var patch string
	if on {
		patch = `{"metadata":{"annotations":{"` + AnnotationRunning + `":"true"}}}`
	} else {
		patch = `{"metadata":{"annotations":{"` + AnnotationRunning + `":null}}}`
	}
	out, err := r.cli.CoreV1().Secrets(r.cfg.Namespace).Patch(ctx, sec.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("secret: %w", classify(err))
	}
	return out, nil
}

// livePod is the environment's pod as the API has it now: nil when there
// is none of ours, an error when the API could not tell (which must not
// read as "the pod is gone").
func (r *Runtime) livePod(ctx context.Context, id string) (*corev1.Pod, error) {
	p, err := r.cli.CoreV1().Pods(r.cfg.Namespace).Get(ctx, ObjectName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && !r.ours(p.Labels, id)) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pod: %w", classify(err))
	}
	return p, nil
}

// classify marks the API's answers that retrying will not change
// (invalid, forbidden) as permanent.
func classify(err error) error {
	if apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err) {
		return runtime.Permanent(err)
	}
	return err
}
