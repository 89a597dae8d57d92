package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	k8srt "dev8.dev/dev8/internal/runtime/kubernetes"
	"dev8.dev/dev8/sdk"
)

// k8sSupervisorImage is the supervisor image the kubernetes figures build
// and load into the node.
const k8sSupervisorImage = "dev8-bench/k8s-supervisor:latest"

var (
	kubernetesFigures bool
	k8sImage          string
	k8sSupervisorFrom string
)

func init() {
	flag.BoolVar(&kubernetesFigures, "kubernetes", true, "measure create/resume → SSH-ready on the kubernetes runtime against the cluster's floor (a bare pod of the same image applied → Running), when the test cluster is up ("+k8sScript+" status) and the workspace image is built")
	flag.StringVar(&k8sImage, "kubernetes-image", "dev8/base:latest", "workspace image of the kubernetes figures (the base template's), from the local Docker engine; loaded into the node when it is not there")
	flag.StringVar(&k8sSupervisorFrom, "kubernetes-supervisor-from", "server", "the server's --kubernetes-supervisor-from for the kubernetes figures: server (workspaces fetch the supervisor from the server) or image (an init container copies it from the supervisor image)")
}

// k8sSize is the instance type of the kubernetes figures, and the floor
// pod's resources and claim.
const (
	k8sInstanceType = "lightweight"
	k8sCPU          = 1
	k8sMemoryGB     = 2
	k8sStorageGB    = 20
)

// kubernetesBench: on the test cluster, the floor (a bare pod of the
// workspace image applied → Running, and the same with a new claim and with
// an existing one), then create → SSH-ready and resume → SSH-ready through a
// real `dev8 server --runtime kubernetes`. The runs alternate (floor, then
// Dev8) so that each ratio compares runs taken under the same load.
func kubernetesBench(ctx context.Context, o options) (err error) {
	if reason, off := sectionOff("kubernetes", kubernetesFigures); off {
		results.Skipped = append(results.Skipped, "kubernetes lifecycle figures: "+reason)
		return nil
	}
	k, reason := findCluster(ctx)
	if k == nil {
		results.Skipped = append(results.Skipped, "kubernetes lifecycle figures: "+reason)
		return nil
	}
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer dc.Close()
	if _, err := dc.ImageInspect(ctx, k8sImage); err != nil {
		results.Skipped = append(results.Skipped, fmt.Sprintf("kubernetes lifecycle figures: %s is not in the Docker engine (make images builds it): %v", k8sImage, err))
		return nil
	}
	fmt.Printf("== lifecycle (kubernetes runtime, sqlite; image %s; supervisor from the %s)\n", k8sImage, k8sSupervisorFrom)
	// An interrupt ends the runs, and the cleanup below still runs.
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	if err := buildSupervisorImage(ctx, dc, k8sSupervisorImage); err != nil {
		return err
	}
	for _, img := range []string{k8sImage, k8sSupervisorImage} {
		if err := k.ensureImage(ctx, dc, img); err != nil {
			return err
		}
	}
	ns, err := k.createNamespace(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := k.removeNamespace(ns); rerr != nil {
			err = fmt.Errorf("%w; remove namespace %s: %v", err, ns, rerr)
		}
	}()
	pods, err := watchPods(ctx, k.cli, ns)
	if err != nil {
		return err
	}
	defer pods.stop()

	dir, err := os.MkdirTemp("", "dev8bench-k8s-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := startDev8(ctx, o.dev8, dir, k.hostIP,
		"--runtime", "kubernetes",
		"--kubeconfig", k.kubeconfig,
		"--kubernetes-namespace", ns,
		"--kubernetes-supervisor-from", k8sSupervisorFrom,
		"--kubernetes-supervisor-image", k8sSupervisorImage,
		"--kubernetes-server-egress", k.hostIP,
		"--template-image", "base="+k8sImage,
		// As on the in-process servers: the SSH-ready loop would be
		// throttled.
		"--rate-limit-user", "0", "--rate-limit-ip", "0")
	if err != nil {
		return err
	}
	defer func() {
		if serr := srv.stop(); serr != nil {
			fmt.Fprintf(os.Stderr, "dev8 server: %v\n%s\n", serr, srv.logTail())
		}
	}()
	token, err := userToken(ctx, srv.url, "kubernetes@bench.test")
	if err != nil {
		return err
	}
	c := sdk.New(srv.url, token)

	var m k8sMeasures
	for i := range o.runs {
		if err := m.floorRun(ctx, k, pods, ns, i); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		r, err := createResumeOnce(ctx, c, 3*time.Minute, "kubernetes ", sdk.CreateEnvironmentRequest{
			Name: fmt.Sprintf("bench-k8s-%d", i), TemplateName: "base", InstanceType: k8sInstanceType, Runtime: "kubernetes",
		})
		if err != nil {
			return fmt.Errorf("%w\nserver log:\n%s", err, srv.logTail())
		}
		m.dev8Run(pods, r, i)
		deleteEnvironment(ctx, c, r.id, 2*time.Minute)
	}
	m.figures()
	return nil
}

// k8sMeasures are the kubernetes figures' runs.
type k8sMeasures struct {
	floor, floorClaim, floorResume []float64
	create, resume                 []float64
	// The parts of create and resume: POST → pod created, pod created →
	// SSH-ready.
	createParts, resumeParts [2][]float64
	// early counts the runs of create and resume that were SSH-ready
	// before the kubelet reported their pod Running (the server took the
	// supervisor's tunnel for it), of seen, the runs whose pod was seen.
	early, seen [2]int
}

// floorRun: a bare pod applied → Running; then a new claim and a pod using
// it (create's floor), and a new pod on that claim once bound (resume's).
func (m *k8sMeasures) floorRun(ctx context.Context, k *kubeCluster, pods *podEvents, ns string, i int) error {
	name := fmt.Sprintf("floor-%d", i)
	t0, t, uid, err := pods.applyToRunning(ctx, k.cli, floorPod(ns, name, k8sImage, "", k8sCPU, k8sMemoryGB))
	if err != nil {
		return err
	}
	m.floor = append(m.floor, t.running.Sub(t0).Seconds())
	fmt.Printf("   floor run %d: bare pod applied → Running %s (%s)\n", i+1, ms(t.running.Sub(t0)), timelineSteps(t, t0))
	if err := pods.deletePod(ctx, k.cli, ns, name, uid); err != nil {
		return err
	}

	claim := fmt.Sprintf("floor-claim-%d", i)
	t0 = time.Now()
	if _, err := k.cli.CoreV1().PersistentVolumeClaims(ns).Create(ctx, floorClaim(ns, claim, k8sStorageGB), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create claim: %w", err)
	}
	_, t, uid, err = pods.applyToRunning(ctx, k.cli, floorPod(ns, name+"-claim", k8sImage, claim, k8sCPU, k8sMemoryGB))
	if err != nil {
		return err
	}
	m.floorClaim = append(m.floorClaim, t.running.Sub(t0).Seconds())
	claimLine := fmt.Sprintf("new claim + pod → Running %s", ms(t.running.Sub(t0)))
	if err := pods.deletePod(ctx, k.cli, ns, name+"-claim", uid); err != nil {
		return err
	}
	t0, t, uid, err = pods.applyToRunning(ctx, k.cli, floorPod(ns, name+"-claim", k8sImage, claim, k8sCPU, k8sMemoryGB))
	if err != nil {
		return err
	}
	m.floorResume = append(m.floorResume, t.running.Sub(t0).Seconds())
	fmt.Printf("   floor run %d: %s; pod on that claim again → Running %s\n", i+1, claimLine, ms(t.running.Sub(t0)))
	if err := pods.deletePod(ctx, k.cli, ns, name+"-claim", uid); err != nil {
		return err
	}
	if err := k.cli.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, claim, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete claim: %w", err)
	}
	return nil
}

// dev8Run records a Dev8 run and prints where its time went, from the pods'
// timelines.
func (m *k8sMeasures) dev8Run(pods *podEvents, r lifecycleRun, i int) {
	m.create = append(m.create, r.created.Sub(r.create).Seconds())
	m.resume = append(m.resume, r.resumed.Sub(r.resume).Seconds())
	tl := pods.timelines(k8srt.ObjectName(r.id))
	for j, part := range []struct {
		what       string
		start, end time.Time
		parts      *[2][]float64
	}{{"create", r.create, r.created, &m.createParts}, {"resume", r.resume, r.resumed, &m.resumeParts}} {
		if j >= len(tl) {
			fmt.Printf("   %s → ssh-ready run %d: %s (its pod was not seen)\n", part.what, i+1, ms(part.end.Sub(part.start)))
			continue
		}
		t := tl[j]
		fmt.Printf("   %s → ssh-ready run %d: %s (%s, SSH +%s)\n", part.what, i+1, ms(part.end.Sub(part.start)), timelineSteps(t, part.start), ms(part.end.Sub(part.start)))
		part.parts[0] = append(part.parts[0], t.added.Sub(part.start).Seconds())
		part.parts[1] = append(part.parts[1], part.end.Sub(t.added).Seconds())
		m.seen[j]++
		if t.running.IsZero() || t.running.After(part.end) {
			m.early[j]++
		}
	}
}

// timelineSteps tells when t's steps were seen, after t0.
func timelineSteps(t podTimeline, t0 time.Time) string {
	steps := []string{"pod +" + ms(t.added.Sub(t0))}
	if !t.scheduled.IsZero() {
		steps = append(steps, "scheduled +"+ms(t.scheduled.Sub(t0)))
	}
	type step struct {
		name string
		at   time.Time
	}
	var more []step
	for n, at := range t.initDone {
		more = append(more, step{"init " + n + " done", at})
	}
	for n, at := range t.started {
		more = append(more, step{n + " started", at})
	}
	for a := range more {
		for b := a + 1; b < len(more); b++ {
			if more[b].at.Before(more[a].at) {
				more[a], more[b] = more[b], more[a]
			}
		}
	}
	for _, s := range more {
		steps = append(steps, s.name+" +"+ms(s.at.Sub(t0)))
	}
	if !t.running.IsZero() {
		steps = append(steps, "Running +"+ms(t.running.Sub(t0)))
	}
	return strings.Join(steps, ", ")
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// ratios are a[i]/b[i]: each Dev8 run against the floor run just before it.
func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

func (m *k8sMeasures) figures() {
	const sec = "1 lifecycle"
	floor := median(m.floor)
	addFigure(Figure{Section: sec, Name: "floor: bare pod of the image applied → Running (kubernetes)", Engine: "—", Unit: "s", Note: fmt.Sprintf("%s, sleep infinity, a workspace pod's security context, %d CPU / %d GiB; watched with an informer", k8sImage, k8sCPU, k8sMemoryGB)}, m.floor, 0, true)
	addFigure(Figure{Section: sec, Name: "  the same with a new claim (claim + pod applied → Running)", Engine: "—", Unit: "s", Note: fmt.Sprintf("a %d GiB claim of the default storage class, created just before the pod", k8sStorageGB)}, m.floorClaim, 0, true)
	addFigure(Figure{Section: sec, Name: "  the same on that bound claim again (pod applied → Running)", Engine: "—", Unit: "s"}, m.floorResume, 0, true)
	target := fmt.Sprintf("≤ 2× floor (%.2f s)", 2*floor)
	addFigure(Figure{Section: sec, Name: "create → SSH-ready (kubernetes, image present)", Engine: "sqlite", Unit: "s", Target: target, Note: "POST /environments until an SSH exec of true runs through dev8 server --runtime kubernetes"}, m.create, 2*floor, true)
	addFigure(Figure{Section: sec, Name: "  create ÷ floor (each run against the floor run before it)", Engine: "sqlite", Unit: "×", Target: "≤ 2"}, ratios(m.create, m.floor), 2, true)
	addFigure(Figure{Section: sec, Name: "  of which POST → pod created", Engine: "sqlite", Unit: "s", Note: "the server's checks, Secret, NetworkPolicy, claim and pod made through the API"}, m.createParts[0], 0, true)
	addFigure(Figure{Section: sec, Name: "  of which pod created → SSH-ready", Engine: "sqlite", Unit: "s", Note: fmt.Sprintf("scheduling, volumes, the containers' start (with the supervisor from the %s), the supervisor's tunnel, RUNNING, the SSH exec; SSH-ready before the kubelet reported the pod Running in %d of %d runs", k8sSupervisorFrom, m.early[0], m.seen[0])}, m.createParts[1], 0, true)
	addFigure(Figure{Section: sec, Name: "stopped → SSH-ready, resume (kubernetes)", Engine: "sqlite", Unit: "s", Target: target}, m.resume, 2*floor, true)
	addFigure(Figure{Section: sec, Name: "  resume ÷ floor (each run against the floor run before it)", Engine: "sqlite", Unit: "×", Target: "≤ 2"}, ratios(m.resume, m.floor), 2, true)
	addFigure(Figure{Section: sec, Name: "  of which POST /start → pod created", Engine: "sqlite", Unit: "s"}, m.resumeParts[0], 0, true)
	addFigure(Figure{Section: sec, Name: "  of which pod created → SSH-ready", Engine: "sqlite", Unit: "s", Note: fmt.Sprintf("SSH-ready before the kubelet reported the pod Running in %d of %d runs", m.early[1], m.seen[1])}, m.resumeParts[1], 0, true)
}
