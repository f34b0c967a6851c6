package labtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"hostdev.local/k8s/lab/cluster"
)

const driver = "lab.hostdev.io"

// 1. The apiserver serves resource.k8s.io/v1 and lists its ResourceSlices,
// with the DRA feature gates the driver needs on.
func TestAPIServerListsResourceSlicesV1(t *testing.T) {
	needLab(t)
	ctx := ctxFor(t, time.Minute)
	res, err := cs.Discovery().ServerResourcesForGroupVersion("resource.k8s.io/v1")
	if err != nil {
		t.Fatalf("the apiserver does not serve resource.k8s.io/v1: %v", err)
	}
	found := false
	for _, r := range res.APIResources {
		if r.Name == "resourceslices" {
			found = strings.Contains(strings.Join(r.Verbs, ","), "list")
		}
	}
	if !found {
		t.Fatalf("resource.k8s.io/v1 has no listable resourceslices: %+v", res.APIResources)
	}
	if _, err := cs.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("cannot list resourceslices.resource.k8s.io/v1: %v", err)
	}
	metrics, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("cannot read the apiserver's metrics: %v", err)
	}
	for _, g := range cluster.FeatureGates {
		name := strings.TrimSuffix(g, "=true")
		if !strings.Contains(string(metrics), fmt.Sprintf(`kubernetes_feature_enabled{name=%q,`, name)) {
			t.Errorf("the apiserver does not know the feature gate %s", name)
			continue
		}
		for _, line := range strings.Split(string(metrics), "\n") {
			if strings.HasPrefix(line, fmt.Sprintf(`kubernetes_feature_enabled{name=%q,`, name)) && !strings.HasSuffix(line, " 1") {
				t.Errorf("feature gate %s is off in the apiserver: %s", name, line)
			}
		}
	}
}

func str(s string) *string { return &s }

func quantity(s string) resource.Quantity { return resource.MustParse(s) }

// halfOrWhole is a device of the test's pool: a half of the card (4Gi of
// its 8Gi memory counter) or all of it.
func halfOrWhole(name, size, memory string) resourcev1.Device {
	return resourcev1.Device{
		Name: name,
		Attributes: map[resourcev1.QualifiedName]resourcev1.DeviceAttribute{
			"size": {StringValue: str(size)},
		},
		ConsumesCounters: []resourcev1.DeviceCounterConsumption{{
			CounterSet: "card-0",
			Counters:   map[string]resourcev1.Counter{"memory": {Value: quantity(memory)}},
		}},
	}
}

func claim(name, size string) *resourcev1.ResourceClaim {
	return &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
			Name: "card",
			Exactly: &resourcev1.ExactDeviceRequest{
				DeviceClassName: driver,
				Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{
					Expression: fmt.Sprintf(`device.attributes[%q].size == %q`, driver, size),
				}}},
			},
		}}}},
	}
}

// 2. The real scheduler allocates claims against a ResourceSlice with a
// counter set, and leaves unallocated a claim the counters cannot carry.
//
// The pool is one card: a counter set (memory: 8Gi) in a slice of its own
// and, in a second slice, two halves (4Gi each) and the whole card (8Gi).
// Two claims for a half are allocated (the two halves); a third, for the
// whole card, stays unallocated although that device is free: the halves
// used up the counter. (With two devices only, a third claim would fail for
// want of a device, whether counters worked or not.)
func TestSchedulerAllocatesWithinCounters(t *testing.T) {
	needLab(t)
	ctx := ctxFor(t, 5*time.Minute)
	ns := namespace(t, "counters")
	res := cs.ResourceV1()

	class := &resourcev1.DeviceClass{
		ObjectMeta: metav1.ObjectMeta{Name: driver},
		Spec: resourcev1.DeviceClassSpec{Selectors: []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{
			Expression: fmt.Sprintf(`device.driver == %q`, driver),
		}}}},
	}
	if _, err := res.DeviceClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create the DeviceClass: %v", err)
	}
	t.Cleanup(func() { _ = res.DeviceClasses().Delete(context.Background(), driver, metav1.DeleteOptions{}) })
	pool := resourcev1.ResourcePool{Name: "card-0", Generation: 1, ResourceSliceCount: 2}
	slices := []*resourcev1.ResourceSlice{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "lab-card-0-counters"},
			Spec: resourcev1.ResourceSliceSpec{Driver: driver, Pool: pool, NodeName: str(cluster.NodeName),
				SharedCounters: []resourcev1.CounterSet{{
					Name:     "card-0",
					Counters: map[string]resourcev1.Counter{"memory": {Value: quantity("8Gi")}},
				}}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "lab-card-0-devices"},
			Spec: resourcev1.ResourceSliceSpec{Driver: driver, Pool: pool, NodeName: str(cluster.NodeName),
				Devices: []resourcev1.Device{
					halfOrWhole("half-0", "half", "4Gi"),
					halfOrWhole("half-1", "half", "4Gi"),
					halfOrWhole("whole", "whole", "8Gi"),
				}},
		},
	}
	for _, s := range slices {
		got, err := res.ResourceSlices().Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("cannot create ResourceSlice %s: %v", s.Name, err)
		}
		name := s.Name
		t.Cleanup(func() { _ = res.ResourceSlices().Delete(context.Background(), name, metav1.DeleteOptions{}) })
		// A gate that is off drops its fields on write: the test would then
		// check nothing.
		if len(s.Spec.SharedCounters) > 0 && len(got.Spec.SharedCounters) == 0 {
			t.Fatalf("the apiserver dropped the slice's sharedCounters (DRAPartitionableDevices off?)")
		}
		if len(s.Spec.Devices) > 0 && len(got.Spec.Devices[0].ConsumesCounters) == 0 {
			t.Fatalf("the apiserver dropped the devices' consumesCounters (DRAPartitionableDevices off?)")
		}
	}

	allocated := map[string]string{} // claim -> device
	for i, want := range []string{"half", "half", "whole"} {
		name := fmt.Sprintf("claim-%d", i+1)
		if _, err := res.ResourceClaims(ns).Create(ctx, claim(name, want), metav1.CreateOptions{}); err != nil {
			t.Fatalf("cannot create ResourceClaim %s: %v", name, err)
		}
		pod := testPod("pod-"+name, "true")
		pod.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "card", ResourceClaimName: str(name)}}
		pod.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "card"}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("cannot create pod %s: %v", pod.Name, err)
		}
		podName := pod.Name
		// Nothing prepares these devices (no driver runs): the pods go.
		t.Cleanup(func() { deletePod(ns, podName) })
		if want == "whole" {
			break
		}
		eventually(t, name+" allocated by the scheduler", 2*time.Minute, func() error {
			c, err := res.ResourceClaims(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if c.Status.Allocation == nil {
				evs, _ := podEvents(ctx, ns, podName)
				return fmt.Errorf("not allocated; pod events: %v", evs)
			}
			r := c.Status.Allocation.Devices.Results
			if len(r) != 1 || r[0].Driver != driver || r[0].Pool != "card-0" {
				return fmt.Errorf("unexpected allocation %+v", r)
			}
			allocated[name] = r[0].Device
			return nil
		})
	}
	if allocated["claim-1"] == allocated["claim-2"] || !strings.HasPrefix(allocated["claim-1"], "half-") ||
		!strings.HasPrefix(allocated["claim-2"], "half-") {
		t.Fatalf("the two half claims got %q and %q, not the two halves", allocated["claim-1"], allocated["claim-2"])
	}

	// The third: unschedulable, the scheduler saying why in the pod's events.
	var reason string
	eventually(t, "the scheduler's reason for pod-claim-3", 2*time.Minute, func() error {
		evs, err := podEvents(ctx, ns, "pod-claim-3")
		if err != nil {
			return err
		}
		for _, e := range evs {
			if strings.HasPrefix(e, "FailedScheduling: ") && strings.Contains(e, "cannot allocate all claims") {
				reason = e
				return nil
			}
		}
		c, _ := res.ResourceClaims(ns).Get(ctx, "claim-3", metav1.GetOptions{})
		if c != nil && c.Status.Allocation != nil {
			return fmt.Errorf("claim-3 was allocated %+v although the halves hold the whole counter", c.Status.Allocation.Devices.Results)
		}
		return fmt.Errorf("no FailedScheduling event naming the claims yet: %v", evs)
	})
	t.Logf("pod-claim-3: %s", reason)
	c, err := res.ResourceClaims(ns).Get(ctx, "claim-3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status.Allocation != nil {
		t.Fatalf("claim-3 was allocated %+v although the halves hold the whole counter", c.Status.Allocation.Devices.Results)
	}
	p, err := cs.CoreV1().Pods(ns).Get(ctx, "pod-claim-3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "" {
		t.Fatalf("pod-claim-3 was bound to %s", p.Spec.NodeName)
	}
}

// 3. A pod without claims runs to completion on the real kubelet through
// containerd and runc, and its log is read back through the API (the
// apiserver fetching it from the kubelet over verified TLS).
func TestPodRunsAndItsLogIsRead(t *testing.T) {
	needLab(t)
	ctx := ctxFor(t, 3*time.Minute)
	ns := namespace(t, "pod")
	// The service account token and namespace come from the projected volume
	// (signed with the lab's service-account key).
	pod := testPod("hello", `echo "hello from $(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace) on $(uname -n)"; test -s /var/run/secrets/kubernetes.io/serviceaccount/token`)
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create the pod: %v", err)
	}
	t.Cleanup(func() { deletePod(ns, "hello") })
	eventually(t, "pod hello Succeeded", 2*time.Minute, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return err
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			return nil
		case corev1.PodFailed:
			t.Fatalf("pod hello failed: %s", describe(ctx, ns, "hello"))
		}
		return fmt.Errorf("%s", describe(ctx, ns, "hello"))
	})
	logs, err := cs.CoreV1().Pods(ns).GetLogs("hello", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("cannot read pod hello's log through the API: %v", err)
	}
	host, _ := os.Hostname()
	want := fmt.Sprintf("hello from %s on %s\n", ns, host)
	if string(logs) != want {
		t.Fatalf("pod hello's log is %q, want %q", logs, want)
	}
}

// 4. A kubelet killed with SIGKILL and started again brings the node back to
// Ready, with a lease and a heartbeat from the new kubelet.
func TestKubeletRestartNodeReady(t *testing.T) {
	needLab(t)
	ctx := ctxFor(t, 4*time.Minute)
	if err := cluster.NodeReadySince(cs, time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("the node is not Ready before the test: %v", err)
	}
	pid, err := lab.KillKubelet()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("the kubelet (pid %d) still runs after SIGKILL", pid)
	}
	restarted := time.Now()
	if err := lab.StartKubelet(); err != nil {
		t.Fatalf("the kubelet did not come back: %v", err)
	}
	if np := lab.KubeletPid(); np == 0 || np == pid {
		t.Fatalf("no new kubelet runs (pid %d, the killed one was %d)", np, pid)
	}
	// Checked here too, not only inside StartKubelet: Ready, with the lease
	// renewed and a heartbeat posted by the new kubelet.
	eventually(t, "node Ready after the restart", time.Minute, func() error {
		return cluster.NodeReadySince(cs, restarted)
	})
	eventually(t, "the node schedulable after the restart", time.Minute, func() error {
		node, err := cs.CoreV1().Nodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if node.Spec.Unschedulable {
			return fmt.Errorf("the node is cordoned")
		}
		for _, tn := range node.Spec.Taints {
			if tn.Effect == corev1.TaintEffectNoSchedule || tn.Effect == corev1.TaintEffectNoExecute {
				return fmt.Errorf("the node is tainted: %+v", tn)
			}
		}
		return nil
	})
}

// 5. The running kubelet (its /configz) has no hard eviction threshold and no image garbage collection: a
// shared machine's full disk must not taint the lab's node or delete its
// never-pulled test image (both happened once on a CI machine).
func TestKubeletNeverEvictsNorCollectsImages(t *testing.T) {
	needLab(t)
	ctx := ctxFor(t, time.Minute)
	raw, err := lab.KubeletConfigz()
	if err != nil {
		t.Fatalf("cannot read the kubelet's configz: %v", err)
	}
	var cz struct {
		KubeletConfig struct {
			EvictionHard                map[string]string `json:"evictionHard"`
			ImageGCHighThresholdPercent *int              `json:"imageGCHighThresholdPercent"`
		} `json:"kubeletconfig"`
	}
	if err := json.Unmarshal(raw, &cz); err != nil {
		t.Fatalf("the kubelet's configz is not what it was: %v: %.300s", err, raw)
	}
	kc := cz.KubeletConfig
	if len(kc.EvictionHard) == 0 {
		t.Fatalf("configz has no evictionHard (the kubelet's defaults would apply): %.300s", raw)
	}
	for signal, v := range kc.EvictionHard {
		if v != "0%" {
			t.Errorf("eviction threshold %s is %q, want 0%% (ignored)", signal, v)
		}
	}
	if kc.ImageGCHighThresholdPercent == nil || *kc.ImageGCHighThresholdPercent != 100 {
		t.Errorf("imageGCHighThresholdPercent is %v, want 100 (image GC off)", kc.ImageGCHighThresholdPercent)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range node.Spec.Taints {
		t.Errorf("the node is tainted: %s:%s (%s)", tn.Key, tn.Effect, cluster.NodeState(cs, lab.Dir))
	}
}
