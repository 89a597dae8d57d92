package kubernetes

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"dev8.dev/dev8/internal/agentapi"
	"dev8.dev/dev8/internal/placement"
	"dev8.dev/dev8/internal/runtime"
)

// Keys of an instance's Secret.
const (
	// secretSpec holds the runtime.Spec (without its token) as JSON.
	secretSpec = "spec.json"
	// secretToken holds this start's agent token.
	secretToken = "agent-token"
	// secretEnvPrefix prefixes the workspace's own environment variables
	// (Spec.Env, Config.ExtraEnv): kept in the Secret, so the pod's spec
	// shows their names only.
	secretEnvPrefix = "env."
)

// Names of the pod's containers and volumes.
const (
	containerWorkspace  = "workspace"
	containerSupervisor = "dev8-supervisor"
	containerHome       = "dev8-home"
	volumeStorage       = "storage"
	volumeSupervisor    = "dev8-bin"
	volumeAgent         = "dev8-agent"
	volumeRun           = "dev8-run"
)

// SupervisorInstall is the init container's command: the supervisor image's
// binary copies itself where the workspace container runs it.
var SupervisorInstall = []string{"/dev8-supervisor", "install", SupervisorPath}

// HomeVolumeDir is where the home's volume is mounted in the dev8-home init
// container, which copies the image's home into it when it is empty.
const HomeVolumeDir = "/.dev8/home"

// secretKey is the grammar of a Secret's keys.
var secretKey = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// instanceSecret is the Secret recording spec (see the package doc).
func (r *Runtime) instanceSecret(spec runtime.Spec) (*corev1.Secret, error) {
	token := spec.AgentToken
	spec.AgentToken = ""
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{secretSpec: js, secretToken: []byte(token)}
	for _, kv := range r.launch(spec).Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if plainEnv(k) {
			continue
		}
		if !secretKey.MatchString(secretEnvPrefix + k) {
			r.log.Warn("environment variable left out: Kubernetes cannot carry its name", "environment", spec.EnvironmentID, "name", k)
			continue
		}
		data[secretEnvPrefix+k] = []byte(v)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ObjectName(spec.EnvironmentID),
			Namespace: r.cfg.Namespace,
			Labels:    r.labels(spec.EnvironmentID, spec.UserID),
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}, nil
}

// specOf reads the Spec a Secret records, with its token.
func specOf(s *corev1.Secret) (runtime.Spec, error) {
	var spec runtime.Spec
	if err := json.Unmarshal(s.Data[secretSpec], &spec); err != nil {
		return runtime.Spec{}, fmt.Errorf("secret %s: %s: %w", s.Name, secretSpec, err)
	}
	spec.AgentToken = string(s.Data[secretToken])
	return spec, nil
}

// plainEnv: the supervisor's own variables, which hold nothing secret (the
// token is a file), go in the pod's spec as they are.
func plainEnv(k string) bool { return k == "HOME" || strings.HasPrefix(k, "DEV8_") }

// launch is what the supervisor is told (agentapi.Launch).
func (r *Runtime) launch(spec runtime.Spec) agentapi.Launch {
	return agentapi.Launch{
		Extra:          r.cfg.ExtraEnv,
		Env:            spec.Env,
		Home:           r.cfg.HomeDir,
		EnvironmentID:  spec.EnvironmentID,
		WorkspaceDir:   WorkspaceDir,
		KillAfter:      r.cfg.StopTimeout,
		AgentURL:       spec.AgentURL,
		AgentTokenFile: AgentTokenDir + "/" + secretToken,
		CodeServer:     r.cfg.CodeServer,
		CodeServerAddr: CodeServerSocket,
	}
}

// claim is the PersistentVolumeClaim of spec's storage, owned by owner.
func (r *Runtime) claim(spec runtime.Spec, owner *corev1.Secret) *corev1.PersistentVolumeClaim {
	gb := max(spec.StorageGB, 1)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: r.ownedMeta(spec, owner),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: *resource.NewQuantity(int64(gb)<<30, resource.BinarySI),
			}},
		},
	}
	if r.cfg.StorageClass != "" {
		pvc.Spec.StorageClassName = ptr.To(r.cfg.StorageClass)
	}
	return pvc
}

// ownedMeta names an object of spec's environment, owned by its Secret.
func (r *Runtime) ownedMeta(spec runtime.Spec, owner *corev1.Secret) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      ObjectName(spec.EnvironmentID),
		Namespace: r.cfg.Namespace,
		Labels:    r.labels(spec.EnvironmentID, spec.UserID),
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "Secret", Name: owner.Name, UID: owner.UID,
		}},
	}
}

// pod is the workspace's Pod for spec, as recorded in owner, with the
// supervisor brought in as Config.SupervisorFrom says; seedHome adds the
// container that fills a new home volume from the image.
func (r *Runtime) pod(spec runtime.Spec, owner *corev1.Secret, seedHome bool) (*corev1.Pod, error) {
	image := r.imageRef(spec.Image)
	res, err := r.resources(spec)
	if err != nil {
		return nil, err
	}
	r.shareCPU(res)
	uid := r.cfg.WorkspaceUID
	restricted := &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		RunAsUser:                ptr.To(uid),
		RunAsGroup:               ptr.To(uid),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	var env []corev1.EnvVar
	for _, kv := range r.launch(spec).Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case plainEnv(k):
			env = append(env, corev1.EnvVar{Name: k, Value: v})
		case secretKey.MatchString(secretEnvPrefix + k):
			env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: owner.Name}, Key: secretEnvPrefix + k,
			}}})
		}
	}
	p := &corev1.Pod{
		ObjectMeta: r.ownedMeta(spec, owner),
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To(int64(math.Ceil(r.cfg.StopTimeout.Seconds()))),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:        ptr.To(true),
				RunAsUser:           ptr.To(uid),
				RunAsGroup:          ptr.To(uid),
				FSGroup:             ptr.To(uid),
				FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
				SeccompProfile:      &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			NodeSelector: r.nodeSelector(spec),
			Tolerations:  r.cfg.Tolerations,
			Volumes: []corev1.Volume{
				{Name: volumeStorage, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ObjectName(spec.EnvironmentID)}}},
				{Name: volumeSupervisor, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: volumeAgent, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: owner.Name, DefaultMode: ptr.To(int32(0o400)),
					Items: []corev1.KeyToPath{{Key: secretToken, Path: secretToken}},
				}}},
				{Name: volumeRun, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
					Medium: corev1.StorageMediumMemory, SizeLimit: resource.NewQuantity(16<<20, resource.BinarySI),
				}}},
			},
			Containers: []corev1.Container{{
				Name:                     containerWorkspace,
				Image:                    image,
				ImagePullPolicy:          r.cfg.ImagePullPolicy,
				Command:                  []string{SupervisorPath, "supervisor"},
				WorkingDir:               WorkspaceDir,
				Env:                      env,
				Resources:                res,
				SecurityContext:          restricted,
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				VolumeMounts: []corev1.VolumeMount{
					{Name: volumeStorage, MountPath: WorkspaceDir, SubPath: "workspace"},
					{Name: volumeStorage, MountPath: r.cfg.HomeDir, SubPath: "home"},
					{Name: volumeSupervisor, MountPath: SupervisorDir, ReadOnly: true},
					{Name: volumeAgent, MountPath: AgentTokenDir, ReadOnly: true},
					{Name: volumeRun, MountPath: RunDir},
				},
			}},
		},
	}
	if r.cfg.SupervisorFrom == SupervisorFromServer {
		r.fetchSupervisor(p, image, restricted, seedHome)
	} else {
		r.installSupervisor(p, image, restricted, seedHome)
	}
	if r.cfg.RuntimeClass != "" {
		p.Spec.RuntimeClassName = ptr.To(r.cfg.RuntimeClass)
	}
	for _, s := range r.cfg.ImagePullSecrets {
		p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return p, nil
}

// installSupervisor brings the supervisor in from Config.SupervisorImage
// (SupervisorFromImage): an init container copies it into the pod's
// emptyDir; with seedHome, a second one, of the workspace image, seeds the
// home by that supervisor (supervisor.SeedHome), which needs nothing of
// the image.
func (r *Runtime) installSupervisor(p *corev1.Pod, image string, restricted *corev1.SecurityContext, seedHome bool) {
	p.Spec.InitContainers = []corev1.Container{{
		Name:            containerSupervisor,
		Image:           r.cfg.SupervisorImage,
		ImagePullPolicy: r.cfg.ImagePullPolicy,
		Command:         SupervisorInstall,
		SecurityContext: restricted,
		// A failure's last output becomes its reason's message.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		VolumeMounts:             []corev1.VolumeMount{{Name: volumeSupervisor, MountPath: SupervisorDir}},
		Resources:                initResources,
	}}
	if seedHome {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{
			// The image's home into a new home volume (as Docker
			// fills a new volume from the image): run from the
			// workspace image, by the supervisor just copied.
			Name:                     containerHome,
			Image:                    image,
			ImagePullPolicy:          r.cfg.ImagePullPolicy,
			Command:                  []string{SupervisorPath, "seed-home", r.cfg.HomeDir, HomeVolumeDir},
			SecurityContext:          restricted,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			VolumeMounts: []corev1.VolumeMount{
				{Name: volumeSupervisor, MountPath: SupervisorDir, ReadOnly: true},
				{Name: volumeStorage, MountPath: HomeVolumeDir, SubPath: "home"},
			},
			Resources: initResources,
		})
	}
}

// fetchSupervisor has the workspace container fetch the supervisor from
// the server (SupervisorFromServer): its command is Bootstrap, which
// writes it into the pod's emptyDir (so mounted writable). With seedHome,
// the home is seeded by a second container of the workspace image that
// runs beside it (SeedHome), not before it: the pod has no init
// container, and so starts as a bare pod of its image does.
func (r *Runtime) fetchSupervisor(p *corev1.Pod, image string, restricted *corev1.SecurityContext, seedHome bool) {
	ws := &p.Spec.Containers[0]
	seeded := ""
	if seedHome {
		seeded = seededFIFO
	}
	ws.Command = []string{"/bin/sh", "-c", Bootstrap, "dev8-bootstrap", SupervisorPath, seeded}
	for i := range ws.VolumeMounts {
		if ws.VolumeMounts[i].Name == volumeSupervisor {
			ws.VolumeMounts[i].ReadOnly = false
		}
	}
	if seedHome {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name:                     containerHome,
			Image:                    image,
			ImagePullPolicy:          r.cfg.ImagePullPolicy,
			Command:                  []string{"/bin/sh", "-c", SeedHome, "dev8-seed-home", r.cfg.HomeDir, HomeVolumeDir, seededFIFO},
			SecurityContext:          restricted,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			VolumeMounts: []corev1.VolumeMount{
				{Name: volumeStorage, MountPath: HomeVolumeDir, SubPath: "home"},
				{Name: volumeRun, MountPath: RunDir},
			},
			Resources: seedResources,
		})
	}
}

// seedResources bound SeedHome's container. It asks for nothing: unlike an
// init container's, a container's requests add to the pod's, and a
// workspace whose size is a whole node would no longer fit on it.
var seedResources = corev1.ResourceRequirements{
	Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0"), corev1.ResourceMemory: resource.MustParse("0")},
	Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
}

// initResources bound the containers that copy files (the init
// containers, and SeedHome's).
var initResources = corev1.ResourceRequirements{
	Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
	Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
}

// imageRef is the reference to run for a template's image.
func (r *Runtime) imageRef(image string) string {
	return runtime.ImageRef(image, r.cfg.DefaultImage, r.cfg.ImageRefs)
}

// resources are the workspace container's requests and limits: its size's
// CPUs and memory, Config.Resources, and the spec's own extended resources
// (its instance type's GPUs), which win over Config.Resources for a name
// both have. Requests equal limits, so a workspace gets what its size says
// (the pod is Guaranteed) and the scheduler puts it where that fits.
func (r *Runtime) resources(spec runtime.Spec) (corev1.ResourceRequirements, error) {
	l := corev1.ResourceList{}
	if cpu := spec.CPUCores; cpu > 0 {
		// Kubernetes counts CPU in millicores: 0.5 is 500m. A size finer
		// than that is refused rather than rounded (Create checks this
		// before it makes anything).
		milli := cpu * 1000
		switch {
		case math.IsInf(cpu, 0) || milli != math.Trunc(milli):
			return corev1.ResourceRequirements{}, fmt.Errorf("%g vCPU: Kubernetes takes CPUs in whole millicores (steps of 0.001)", cpu)
		case cpu == math.Trunc(cpu):
			l[corev1.ResourceCPU] = *resource.NewQuantity(int64(cpu), resource.DecimalSI)
		default:
			l[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(milli), resource.DecimalSI)
		}
	}
	if spec.MemoryGB > 0 {
		l[corev1.ResourceMemory] = *resource.NewQuantity(int64(spec.MemoryGB)<<30, resource.BinarySI)
	}
	for name, v := range placement.Merge(r.cfg.Resources, spec.Resources) {
		if err := placement.CheckResourceName(name); err != nil {
			return corev1.ResourceRequirements{}, err
		}
		q, err := placement.ResourceQuantity(name, v)
		if err != nil {
			return corev1.ResourceRequirements{}, err
		}
		l[corev1.ResourceName(name)] = q
	}
	return corev1.ResourceRequirements{Requests: l.DeepCopy(), Limits: l}, nil
}

// nodeSelector is Config.NodeSelector with the spec's on top (the spec's
// value wins for a label both name).
func (r *Runtime) nodeSelector(spec runtime.Spec) map[string]string {
	return placement.Merge(r.cfg.NodeSelector, spec.NodeSelector)
}

// shareCPU lowers the CPU request of res to Config.CPURequestRatio of its
// limit (at least one millicore).
func (r *Runtime) shareCPU(res corev1.ResourceRequirements) {
	limit, ok := res.Limits[corev1.ResourceCPU]
	if !ok || r.cfg.CPURequestRatio >= 1 {
		return
	}
	milli := int64(math.Ceil(float64(limit.MilliValue()) * r.cfg.CPURequestRatio))
	res.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(max(milli, 1), resource.DecimalSI)
}
