package labtest

// The DRA driver (crates/hostdev-dra) against the real cluster: hostdevd on
// a simulated host and the driver beside it, each a process of the test.
// HOSTDEV_DRA_BIN names the directory with hostdevd, hostdev-dra,
// hostdev-sim and hostdevctl (cargo xtask k8s-test builds them and sets it);
// without it these tests are skipped, saying so.
//
// Three simulated hosts serve the one node, each through its own driver
// name (pools are per driver): the lab's own simulator (profile demo) as
// hostdev.io, a `large` one as large.hostdev.io and an `nvidia-sriov` one as
// sriov.hostdev.io. All three register with the real kubelet.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"hostdev.local/k8s/lab/cluster"
)

func draBin(t *testing.T) string {
	t.Helper()
	needLab(t)
	dir := os.Getenv("HOSTDEV_DRA_BIN")
	if dir == "" {
		t.Skip("HOSTDEV_DRA_BIN is not set: it names the directory with hostdevd, hostdev-dra, hostdev-sim and hostdevctl (cargo xtask k8s-test sets it)")
	}
	if lab.SimRoot() == "" {
		t.Skip("the lab runs without a simulator (HOSTDEV_K8S_LAB_SIM is not set)")
	}
	return dir
}

// startProc runs a process of the test in its own process group, its output
// in the lab's logs; when owner ends, SIGTERM, then SIGKILL after 10 s (a
// subtest may restart a process that outlives it).
func startProc(t, owner *testing.T, name string, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	log, err := os.Create(lab.Path("logs", name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), env...)
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	owner.Cleanup(func() {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
		log.Close()
	})
	return c
}

// startSim mounts a simulated host of a profile and returns its root.
func startSim(t *testing.T, bin, profile string) string {
	t.Helper()
	root, err := os.MkdirTemp("", "hostdev-dra-sim-"+profile+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	startProc(t, t, "hostdev-sim-"+profile, nil, filepath.Join(bin, "hostdev-sim"), "run", "--root", root, "--profile", profile)
	eventually(t, "hostdev-sim "+profile+" mounted", 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(root, "run", "hostdev-sim.pid"))
		return err
	})
	return root
}

type draHost struct {
	bin, driver, root, socket string
	hostdevd, plugin          *exec.Cmd
	starts                    int
	owner                     *testing.T
}

// startDRA runs hostdevd on root and the driver beside it, and waits for
// its slices. Its slices are deleted when the test ends.
func startDRA(t *testing.T, bin, driverName, root string) *draHost {
	t.Helper()
	t.Cleanup(func() {
		_ = cs.ResourceV1().ResourceSlices().DeleteCollection(context.Background(), metav1.DeleteOptions{},
			metav1.ListOptions{FieldSelector: "spec.driver=" + driverName})
	})
	dir, err := os.MkdirTemp("", "hostdev-dra-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	h := &draHost{bin: bin, driver: driverName, root: root, socket: filepath.Join(dir, "hostdevd.sock"), owner: t}
	h.startHostdevd(t)
	h.startPlugin(t)
	eventually(t, driverName+"'s slices published", time.Minute, func() error {
		_, err := h.slices(context.Background())
		return err
	})
	return h
}

func (h *draHost) logName(what string) string {
	h.starts++
	return fmt.Sprintf("%s-%s-%d", what, h.driver, h.starts)
}

func (h *draHost) startHostdevd(t *testing.T) {
	t.Helper()
	_ = os.Remove(h.socket)
	h.hostdevd = startProc(t, h.owner, h.logName("hostdevd"), []string{"HOSTDEV_ROOT=" + h.root}, filepath.Join(h.bin, "hostdevd"), "--socket", h.socket)
	eventually(t, "hostdevd for "+h.driver+" listening", 30*time.Second, func() error {
		_, err := os.Stat(h.socket)
		return err
	})
}

// startPlugin starts the driver and waits until the kubelet registered it.
func (h *draHost) startPlugin(t *testing.T) {
	t.Helper()
	name := h.logName("hostdev-dra")
	h.plugin = startProc(t, h.owner, name, []string{"KUBECONFIG=" + lab.Kubeconfig()}, filepath.Join(h.bin, "hostdev-dra"),
		"--driver", h.driver, "--node", cluster.NodeName, "--socket", h.socket,
		"--kubelet-dir", lab.KubeletRootDir(), "--cdi-dir", lab.CDIDir())
	h.waitRegistered(t, name)
}

func (h *draHost) waitRegistered(t *testing.T, logName string) {
	t.Helper()
	eventually(t, h.driver+" registered with the kubelet", time.Minute, func() error {
		b, _ := os.ReadFile(lab.Path("logs", logName+".log"))
		if !strings.Contains(string(b), "the kubelet registered driver "+h.driver) {
			return fmt.Errorf("not yet: %s", b)
		}
		return nil
	})
}

// kill stops a process of the test with SIGKILL and waits for it.
func kill(t *testing.T, c *exec.Cmd) {
	t.Helper()
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	eventually(t, fmt.Sprintf("pid %d gone", c.Process.Pid), 30*time.Second, func() error {
		if err := syscall.Kill(c.Process.Pid, 0); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// slices returns the driver's pool, whole: every slice of one generation,
// as many as the pool says it has.
func (h *draHost) slices(ctx context.Context) ([]resourcev1.ResourceSlice, error) {
	l, err := cs.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.driver=" + h.driver})
	if err != nil {
		return nil, err
	}
	if len(l.Items) == 0 {
		return nil, fmt.Errorf("no slices of %s", h.driver)
	}
	p := l.Items[0].Spec.Pool
	node, err := cs.CoreV1().Nodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	for _, s := range l.Items {
		if s.Spec.Pool != p || s.Spec.NodeName == nil || *s.Spec.NodeName != cluster.NodeName {
			return nil, fmt.Errorf("slice %s has pool %+v, node %v; another has %+v", s.Name, s.Spec.Pool, s.Spec.NodeName, p)
		}
		// Owned by the Node, so deleting it lets the garbage collector
		// remove the slices.
		o := s.OwnerReferences
		if len(o) != 1 || o[0].APIVersion != "v1" || o[0].Kind != "Node" || o[0].Name != node.Name || o[0].UID != node.UID {
			return nil, fmt.Errorf("slice %s has owners %+v, want Node %s (%s) alone", s.Name, o, node.Name, node.UID)
		}
	}
	if int64(len(l.Items)) != p.ResourceSliceCount {
		return nil, fmt.Errorf("%d slices of a pool of %d", len(l.Items), p.ResourceSliceCount)
	}
	return l.Items, nil
}

func (h *draHost) devices(t *testing.T) map[string]resourcev1.Device {
	t.Helper()
	sl, err := h.slices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]resourcev1.Device{}
	for _, s := range sl {
		for _, d := range s.Spec.Devices {
			out[d.Name] = d
		}
	}
	return out
}

func attr(d resourcev1.Device, driverName, name string) string {
	a, ok := d.Attributes[resourcev1.QualifiedName(name)]
	if !ok {
		a, ok = d.Attributes[resourcev1.QualifiedName(driverName+"/"+name)]
	}
	switch {
	case !ok:
		return ""
	case a.StringValue != nil:
		return *a.StringValue
	case a.IntValue != nil:
		return fmt.Sprint(*a.IntValue)
	case a.BoolValue != nil:
		return fmt.Sprint(*a.BoolValue)
	}
	return ""
}

func deviceClass(t *testing.T, driverName, kind string) string {
	t.Helper()
	name := "dra-" + kind + "-" + rand.String(5)
	class := &resourcev1.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{
			Expression: fmt.Sprintf(`device.driver == %q && device.attributes[%q].kind == %q`, driverName, driverName, kind),
		}}}},
	}
	if _, err := cs.ResourceV1().DeviceClasses().Create(context.Background(), class, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create DeviceClass %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cs.ResourceV1().DeviceClasses().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

// claimPod makes a claim (request "gpu" of the class, selected by cel) and
// a pod holding it that prints its HOSTDEV_ variables and the metadata
// file, then sleeps; both are deleted when owner ends (a subtest's pods
// can outlive it).
func claimPod(t, owner *testing.T, ns, name, class, cel, driverName string) {
	t.Helper()
	claimPodWith(t, owner, ns, name, class, cel, driverName, nil)
}

// claimPodWith is claimPod with the pod changed by edit before it is made.
func claimPodWith(t, owner *testing.T, ns, name, class, cel, driverName string, edit func(*corev1.Pod)) {
	t.Helper()
	ctx := context.Background()
	c := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "gpu",
			Exactly: &resourcev1.ExactDeviceRequest{
				DeviceClassName: class,
				Selectors:       []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: cel}}},
			},
		}}}},
	}
	if _, err := cs.ResourceV1().ResourceClaims(ns).Create(ctx, c, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create claim %s: %v", name, err)
	}
	meta := fmt.Sprintf("/var/run/kubernetes.io/dra-device-attributes/resourceclaims/%s/gpu/%s-metadata.json", name, driverName)
	p := testPod(name, "env | grep ^HOSTDEV_ | sort; echo ---; cat "+meta+"; exec sleep 3600")
	p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimName: &name}}
	p.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}}
	if edit != nil {
		edit(p)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create pod %s: %v", name, err)
	}
	owner.Cleanup(func() { deleteClaimPod(ns, name) })
}

func deleteClaimPod(ns, name string) {
	deletePod(ns, name)
	_ = cs.ResourceV1().ResourceClaims(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
}

func waitRunning(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "pod "+name+" Running", 2*time.Minute, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase == corev1.PodRunning {
			return nil
		}
		if p.Status.Phase == corev1.PodFailed {
			t.Fatalf("pod %s failed: %s", name, describe(ctx, ns, name))
		}
		return fmt.Errorf("%s", describe(ctx, ns, name))
	})
}

// waitUnschedulable waits for the scheduler to say it cannot allocate the
// pod's claim, and checks the claim stays unallocated.
func waitUnschedulable(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	eventually(t, "pod "+name+" unschedulable for its claim", 2*time.Minute, func() error {
		evs, err := podEvents(ctx, ns, name)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if strings.HasPrefix(e, "FailedScheduling:") && strings.Contains(e, "cannot allocate all claims") {
				return nil
			}
		}
		return fmt.Errorf("%s", describe(ctx, ns, name))
	})
	c, err := cs.ResourceV1().ResourceClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.Allocation != nil {
		t.Fatalf("claim %s is allocated: %+v", name, c.Status.Allocation.Devices.Results)
	}
	if p, _ := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); p != nil && p.Spec.NodeName != "" {
		t.Fatalf("pod %s was bound to %s", name, p.Spec.NodeName)
	}
}

func allocated(t *testing.T, ns, name string) resourcev1.DeviceRequestAllocationResult {
	t.Helper()
	c, err := cs.ResourceV1().ResourceClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.Allocation == nil || len(c.Status.Allocation.Devices.Results) != 1 {
		t.Fatalf("claim %s is not allocated one device: %+v", name, c.Status)
	}
	return c.Status.Allocation.Devices.Results[0]
}

func podLog(t *testing.T, ns, name string) string {
	t.Helper()
	var out string
	eventually(t, "pod "+name+"'s output", time.Minute, func() error {
		b, err := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(context.Background())
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "DeviceMetadata") {
			return fmt.Errorf("log so far: %q", b)
		}
		out = string(b)
		return nil
	})
	return out
}

// mdevsOfType lists the simulated host's mdevs of a type (by UUID).
func mdevsOfType(root, typ string) []string {
	ents, _ := os.ReadDir(filepath.Join(root, "sys/bus/mdev/devices"))
	var out []string
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(root, "sys/bus/mdev/devices", e.Name(), "mdev_type"))
		if err == nil && filepath.Base(l) == typ {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func countIs(t *testing.T, what string, n int, get func() []string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d %s", n, what), time.Minute, func() error {
		if got := get(); len(got) != n {
			return fmt.Errorf("%d: %v", len(got), got)
		}
		return nil
	})
}

// metadataAttrs decodes the metadata file's first object (a JSON stream of
// one object per version) and returns its first device's attributes.
func metadataAttrs(t *testing.T, log string) map[string]map[string]any {
	t.Helper()
	_, after, _ := strings.Cut(log, "---\n")
	dec := json.NewDecoder(strings.NewReader(after))
	var m struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Requests   []struct {
			Name    string `json:"name"`
			Devices []struct {
				Attributes map[string]map[string]any `json:"attributes"`
			} `json:"devices"`
		} `json:"requests"`
	}
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("the metadata file in the container does not decode: %v\n%s", err, log)
	}
	if m.Kind != "DeviceMetadata" || m.APIVersion != "metadata.resource.k8s.io/v1beta1" || len(m.Requests) != 1 ||
		m.Requests[0].Name != "gpu" || len(m.Requests[0].Devices) != 1 {
		t.Fatalf("unexpected metadata: %+v", m)
	}
	return m.Requests[0].Devices[0].Attributes
}

// TestDRADriver: acceptance lines 1 and 2 of the driver, in order, on one
// set of simulated hosts.
func TestDRADriver(t *testing.T) {
	top := t
	bin := draBin(t)
	ns := namespace(t, "dra")
	demo := startDRA(t, bin, "hostdev.io", lab.SimRoot())
	large := startDRA(t, bin, "large.hostdev.io", startSim(t, bin, "large"))
	sriovRoot := startSim(t, bin, "nvidia-sriov")
	for _, pf := range []string{"0000:41:00.0", "0000:c1:00.0"} {
		c := exec.Command(filepath.Join(bin, "hostdevctl"), "vgpu", "enable", "--pf", pf, "--numvfs", "2")
		c.Env = append(os.Environ(), "HOSTDEV_ROOT="+sriovRoot)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("hostdevctl vgpu enable --pf %s: %v\n%s", pf, err, out)
		}
	}
	sriov := startDRA(t, bin, "sriov.hostdev.io", sriovRoot)

	t.Run("slices-accepted", func(t *testing.T) {
		for _, h := range []*draHost{demo, large, sriov} {
			sl, err := h.slices(context.Background())
			if err != nil {
				t.Fatalf("%s: %v", h.driver, err)
			}
			sets, devs, kinds := 0, 0, map[string]int{}
			for _, s := range sl {
				sets += len(s.Spec.SharedCounters)
				devs += len(s.Spec.Devices)
				for _, d := range s.Spec.Devices {
					kinds[attr(d, h.driver, "kind")]++
				}
			}
			t.Logf("%s: %d slices, %d counter sets, %d devices %v", h.driver, len(sl), sets, devs, kinds)
			if devs == 0 {
				t.Errorf("%s published no devices", h.driver)
			}
		}
		// large: 16 one-type GPUs, a units set and a types set each, the
		// two of a GPU in one slice.
		sl, _ := large.slices(context.Background())
		units, all := 0, 0
		for _, s := range sl {
			all += len(s.Spec.SharedCounters)
			for _, c := range s.Spec.SharedCounters {
				if _, ok := c.Counters["units"]; ok {
					units++
				}
			}
		}
		if units != 16 || all != 32 {
			t.Errorf("large.hostdev.io published %d counter sets, %d with units; want 32, 16 (a units and a types set per GPU)", all, units)
		}
		// nvidia-sriov: devices per (VF, type) with the VF's PCI address.
		n := 0
		for _, d := range sriov.devices(t) {
			if attr(d, sriov.driver, "kind") == "vgpu" && attr(d, sriov.driver, "resource.kubernetes.io/pciBusID") != "" {
				n++
			}
		}
		if n == 0 {
			t.Errorf("sriov.hostdev.io published no vGPU device with resource.kubernetes.io/pciBusID")
		}
	})

	// demo's NVIDIA-like GPU 0000:3b:00.0 has 16 units; nvidia-230 costs 8
	// (K = 2), nvidia-222 costs 1; one type at a time.
	class := deviceClass(t, demo.driver, "mdev")
	typeIs := func(typ string) string {
		return fmt.Sprintf(`device.attributes[%q].type == %q && device.attributes[%q].parent == "0000:3b:00.0"`, demo.driver, typ, demo.driver)
	}
	t.Run("capacity-K-and-not-K+1", func(t *testing.T) {
		for _, n := range []string{"a-0", "a-1"} {
			claimPod(t, top, ns, n, class, typeIs("nvidia-230"), demo.driver)
		}
		waitRunning(t, ns, "a-0")
		waitRunning(t, ns, "a-1")
		claimPod(t, top, ns, "a-2", class, typeIs("nvidia-230"), demo.driver)
		waitUnschedulable(t, ns, "a-2")
		if got := mdevsOfType(demo.root, "nvidia-230"); len(got) != 2 {
			t.Fatalf("the host has %d nvidia-230 mdevs, want 2: %v", len(got), got)
		}
		deleteClaimPod(ns, "a-2")
		deleteClaimPod(ns, "a-1")
		countIs(t, "nvidia-230 mdevs after a-1's pod is deleted", 1, func() []string { return mdevsOfType(demo.root, "nvidia-230") })
	})

	t.Run("pod-sees-mdev-and-metadata", func(t *testing.T) {
		got := mdevsOfType(demo.root, "nvidia-230")
		if len(got) != 1 {
			t.Fatalf("want a-0's one nvidia-230 mdev, have %v", got)
		}
		uuid := got[0]
		log := podLog(t, ns, "a-0")
		if !strings.Contains(log, "HOSTDEV_MDEV_GPU="+uuid+"\n") {
			t.Errorf("the container's environment (from the CDI spec) does not name mdev %s:\n%s", uuid, log)
		}
		a := metadataAttrs(t, log)
		if a["mdevUUID"]["string"] != uuid {
			t.Errorf("the metadata file's mdevUUID is %v, want %s", a["mdevUUID"], uuid)
		}
	})

	t.Run("one-type-at-a-time", func(t *testing.T) {
		// 8 units are free, but the GPU runs nvidia-230.
		claimPod(t, top, ns, "b-0", class, typeIs("nvidia-222"), demo.driver)
		waitUnschedulable(t, ns, "b-0")
		a0 := mdevsOfType(demo.root, "nvidia-230")
		deleteClaimPod(ns, "a-0")
		countIs(t, "nvidia-230 mdevs after a-0's pod is deleted", 0, func() []string { return mdevsOfType(demo.root, "nvidia-230") })
		if len(a0) == 1 {
			if _, err := os.Stat(filepath.Join(demo.root, "sys/bus/mdev/devices", a0[0])); err == nil {
				t.Errorf("mdev %s is still there after its pod was deleted", a0[0])
			}
		}
		waitRunning(t, ns, "b-0")
		if r := allocated(t, ns, "b-0"); r.Driver != demo.driver || r.Pool != cluster.NodeName {
			t.Errorf("b-0 allocated %+v", r)
		}
		countIs(t, "nvidia-222 mdevs", 1, func() []string { return mdevsOfType(demo.root, "nvidia-222") })
		deleteClaimPod(ns, "b-0")
		countIs(t, "nvidia-222 mdevs after b-0's pod is deleted", 0, func() []string { return mdevsOfType(demo.root, "nvidia-222") })
	})

	t.Run("health-in-the-pods-status", func(t *testing.T) {
		checkHealth(t, top, demo, ns, class, typeIs("nvidia-222"))
	})

	// Acceptance 3, in part: a running pod keeps its device through a
	// SIGKILL of the driver, a restart of hostdevd and a SIGKILL of the
	// kubelet; deleting it afterwards removes the device, the record and
	// the CDI files.
	t.Run("restarts-keep-the-device-and-leak-nothing", func(t *testing.T) {
		claimPod(t, top, ns, "f-0", class, typeIs("nvidia-222"), demo.driver)
		waitRunning(t, ns, "f-0")
		got := mdevsOfType(demo.root, "nvidia-222")
		if len(got) != 1 {
			t.Fatalf("want f-0's one nvidia-222 mdev, have %v", got)
		}
		uuid := got[0]
		c, err := cs.ResourceV1().ResourceClaims(ns).Get(context.Background(), "f-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uid := string(c.UID)

		kill(t, demo.plugin)
		demo.startPlugin(t)
		_ = syscall.Kill(-demo.hostdevd.Process.Pid, syscall.SIGTERM)
		eventually(t, "hostdevd stopped", 30*time.Second, func() error {
			if err := syscall.Kill(demo.hostdevd.Process.Pid, 0); err == nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
		demo.startHostdevd(t)
		pluginLog := lab.Path("logs", fmt.Sprintf("hostdev-dra-%s-%d.log", demo.driver, demo.starts-1))
		registrations := func() int {
			b, _ := os.ReadFile(pluginLog)
			return strings.Count(string(b), "the kubelet registered driver "+demo.driver)
		}
		before := registrations()
		if _, err := lab.KillKubelet(); err != nil {
			t.Fatal(err)
		}
		if err := lab.StartKubelet(); err != nil {
			t.Fatalf("the kubelet did not come back: %v", err)
		}
		eventually(t, "the new kubelet registered "+demo.driver, 2*time.Minute, func() error {
			if n := registrations(); n <= before {
				return fmt.Errorf("%d registrations", n)
			}
			return nil
		})

		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), "f-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Errorf("f-0 did not keep running: %s", describe(context.Background(), ns, "f-0"))
		}
		if got := mdevsOfType(demo.root, "nvidia-222"); len(got) != 1 || got[0] != uuid {
			t.Errorf("after the restarts the host has nvidia-222 mdevs %v, want [%s]", got, uuid)
		}
		// The restarted kubelet deletes the slices of drivers it has not
		// registered yet; the driver publishes its pool again.
		eventually(t, "hostdev.io's pool whole again after the restarts", time.Minute, func() error {
			_, err := demo.slices(context.Background())
			return err
		})

		deleteClaimPod(ns, "f-0")
		countIs(t, "nvidia-222 mdevs after f-0 is deleted", 0, func() []string { return mdevsOfType(demo.root, "nvidia-222") })
		eventually(t, "no record and no CDI file of claim "+uid, time.Minute, func() error {
			var left []string
			recs, _ := os.ReadDir(filepath.Join(demo.root, "var/lib/hostdev/dra/claims"))
			for _, r := range recs {
				left = append(left, "record "+r.Name())
			}
			specs, _ := os.ReadDir(lab.CDIDir())
			for _, f := range specs {
				if strings.Contains(f.Name(), uid) {
					left = append(left, "CDI spec "+f.Name())
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("left: %v", left)
			}
			return nil
		})
	})

	// Acceptance 5, in part: with hostdevd down the pod gets an event that
	// says so, and nothing is made.
	t.Run("hostdevd-down-is-a-clear-event", func(t *testing.T) {
		_ = syscall.Kill(-demo.hostdevd.Process.Pid, syscall.SIGTERM)
		eventually(t, "hostdevd stopped", 30*time.Second, func() error {
			if err := syscall.Kill(demo.hostdevd.Process.Pid, 0); err == nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
		defer demo.startHostdevd(t)
		claimPod(t, top, ns, "d-0", class, typeIs("nvidia-222"), demo.driver)
		ctx := context.Background()
		eventually(t, "d-0's event naming hostdevd", 2*time.Minute, func() error {
			evs, err := podEvents(ctx, ns, "d-0")
			if err != nil {
				return err
			}
			for _, e := range evs {
				if strings.HasPrefix(e, "FailedPrepareDynamicResources:") && strings.Contains(e, "hostdevd does not answer") &&
					strings.Contains(e, "[dra.daemon-down]") {
					return nil
				}
			}
			return fmt.Errorf("%v", evs)
		})
		if got := mdevsOfType(demo.root, "nvidia-222"); len(got) != 0 {
			t.Errorf("with hostdevd down the host got mdevs %v", got)
		}
		deleteClaimPod(ns, "d-0")
	})

	t.Run("cel-type-name-and-numa", func(t *testing.T) {
		eventually(t, "large.hostdev.io's pool whole", 2*time.Minute, func() error {
			_, err := large.slices(context.Background())
			return err
		})
		devs := large.devices(t)
		numas := map[string]bool{}
		var typeName string
		for _, d := range devs {
			numas[attr(d, large.driver, "numaNode")] = true
			typeName = attr(d, large.driver, "typeName")
		}
		if len(numas) < 2 {
			t.Fatalf("large's devices are all on NUMA node(s) %v: a NUMA selector would prove nothing", numas)
		}
		keys := make([]string, 0, len(numas))
		for k := range numas {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		numa := keys[len(keys)-1]
		lclass := deviceClass(t, large.driver, "mdev")
		cel := fmt.Sprintf(`device.attributes[%q].typeName == %q && device.attributes[%q].numaNode == %s`, large.driver, typeName, large.driver, numa)
		claimPod(t, top, ns, "c-0", lclass, cel, large.driver)
		waitRunning(t, ns, "c-0")
		r := allocated(t, ns, "c-0")
		d, ok := devs[r.Device]
		if r.Driver != large.driver || !ok {
			t.Fatalf("c-0 allocated %+v, not one of large's devices", r)
		}
		if attr(d, large.driver, "typeName") != typeName || attr(d, large.driver, "numaNode") != numa {
			t.Errorf("c-0 got %s (type name %q, NUMA node %s), want type name %q on NUMA node %s", r.Device,
				attr(d, large.driver, "typeName"), attr(d, large.driver, "numaNode"), typeName, numa)
		}
		deleteClaimPod(ns, "c-0")
	})

	t.Run("pod-sees-vf-and-metadata", func(t *testing.T) {
		vclass := deviceClass(t, sriov.driver, "vgpu")
		claimPod(t, top, ns, "v-0", vclass, fmt.Sprintf(`device.attributes[%q].typeName == "NVIDIA H100-10C"`, sriov.driver), sriov.driver)
		waitRunning(t, ns, "v-0")
		r := allocated(t, ns, "v-0")
		vf := attr(sriov.devices(t)[r.Device], sriov.driver, "resource.kubernetes.io/pciBusID")
		typeFile := filepath.Join(sriovRoot, "sys/bus/pci/devices", vf, "nvidia/current_vgpu_type")
		if b, err := os.ReadFile(typeFile); err != nil || strings.TrimSpace(string(b)) == "0" {
			t.Errorf("VF %s does not carry a vGPU type while v-0 runs: %q %v", vf, b, err)
		}
		log := podLog(t, ns, "v-0")
		if !strings.Contains(log, "HOSTDEV_VGPU_GPU="+vf+"\n") {
			t.Errorf("the container's environment does not name VF %s:\n%s", vf, log)
		}
		if a := metadataAttrs(t, log); a["resource.kubernetes.io/pciBusID"]["string"] != vf {
			t.Errorf("the metadata file's pciBusID is %v, want %s", a["resource.kubernetes.io/pciBusID"], vf)
		}
		deleteClaimPod(ns, "v-0")
		eventually(t, "VF "+vf+"'s type cleared after v-0 is deleted", time.Minute, func() error {
			b, err := os.ReadFile(typeFile)
			if err != nil || strings.TrimSpace(string(b)) != "0" {
				return fmt.Errorf("%q %v", b, err)
			}
			return nil
		})
	})

	// The wire format, checked with Kubernetes' own generated clients:
	// registration dialled as the kubelet's plugin watcher dials it (the
	// socket path as the target), the DRA service as the kubelet's DRA
	// client does (a unix: target).
	t.Run("wire-format-with-kubernetes-clients", func(t *testing.T) {
		ctx := ctxFor(t, time.Minute)
		regSock := filepath.Join(lab.KubeletRootDir(), "plugins_registry", demo.driver+"-reg.sock")
		conn, err := grpc.DialContext(ctx, regSock, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithBlock(), //nolint:staticcheck // as the kubelet dials
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", addr)
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		info, err := registerapi.NewRegistrationClient(conn).GetInfo(ctx, &registerapi.InfoRequest{})
		if err != nil {
			t.Fatalf("GetInfo: %v", err)
		}
		draSock := filepath.Join(lab.KubeletRootDir(), "plugins", demo.driver, "dra.sock")
		if info.Type != "DRAPlugin" || info.Name != demo.driver || info.Endpoint != draSock ||
			strings.Join(info.SupportedVersions, ",") != "v1.DRAPlugin,v1.DRAResourceHealth" {
			t.Errorf("GetInfo answered %+v", info)
		}
		dc, err := grpc.NewClient("unix:"+draSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer dc.Close()
		uid := "0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10"
		gone := &drapb.Claim{Namespace: ns, Name: "no-such-claim", Uid: uid}
		prep, err := drapb.NewDRAPluginClient(dc).NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{gone}})
		if err != nil {
			t.Fatalf("NodePrepareResources: %v", err)
		}
		if r := prep.Claims[uid]; r == nil || !strings.Contains(r.Error, "does not exist") || len(r.Devices) != 0 {
			t.Errorf("preparing a claim that does not exist answered %+v", prep.Claims)
		}
		un, err := drapb.NewDRAPluginClient(dc).NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: []*drapb.Claim{gone}})
		if err != nil {
			t.Fatalf("NodeUnprepareResources: %v", err)
		}
		if r := un.Claims[uid]; r == nil || r.Error != "" {
			t.Errorf("unpreparing a claim never prepared answered %+v", un.Claims)
		}
	})
}
