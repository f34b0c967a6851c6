package labtest

// TestDRAFaults: acceptance line 3's faults that TestDRADriver's restarts
// do not cover, on a simulated host of its own (demo's hardware with a
// slow create on the NVIDIA-like GPU 0000:3b:00.0, so a prepare can be
// caught in the middle) served as faults.hostdev.io:
//
//   - kill -9 of the driver while hostdevd makes the claim's mdev: the
//     kubelet asks the restarted driver again, the claim is prepared once
//     (one mdev, the UUID of its record, which the container sees), and
//     deleting the pod leaves nothing;
//   - a simulated reboot of the node, with k-0 (restartPolicy Never) and
//     r-0 (Always) running: the driver, hostdevd, the kubelet and both
//     pods' sandboxes and containers killed with SIGKILL, the simulated
//     hardware reset (`hostdev-sim reboot`: every mdev gone, run/ emptied)
//     and the claims' CDI specs removed as /run is; all started again: r-0
//     runs again in a new container with its device made again (same
//     UUID, one record), k-0 failed as a Never pod does and its claim was
//     unprepared (no device, no record), and the published counter for the
//     GPU, less what allocated claims consume, equals what sysfs says the
//     host can still create. Deleting the pods leaves nothing.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	faultsGPU       = "0000:3b:00.0"
	faultsCreateMs  = 8000
	faultsType      = "nvidia-222" // costs 1 of the GPU's 16 units
	faultsTypeCost  = 1
	faultsDriver    = "faults.hostdev.io"
	faultsGPUPrefix = "0000-3b-00-0-"
)

// startSlowSim mounts demo's hardware with a create on faultsGPU that
// takes faultsCreateMs.
func startSlowSim(t *testing.T, bin string) string {
	t.Helper()
	demo, err := os.ReadFile("../../../crates/hostdev-sim/profiles/demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	slow := strings.Replace(string(demo), "create_latency_ms = 2\n", fmt.Sprintf("create_latency_ms = %d\n", faultsCreateMs), 1)
	if slow == string(demo) {
		t.Fatal("demo.toml no longer sets the GPU's create_latency_ms = 2; the slow profile cannot be made from it")
	}
	root, err := os.MkdirTemp("", "hostdev-dra-sim-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	profile := root + ".toml"
	if err := os.WriteFile(profile, []byte(slow), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(profile) })
	startProc(t, t, "hostdev-sim-faults", nil, filepath.Join(bin, "hostdev-sim"), "run", "--root", root, "--profile", profile)
	eventually(t, "hostdev-sim (slow demo) mounted", 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(root, "run", "hostdev-sim.pid"))
		return err
	})
	return root
}

// claimRecords reads hostdevd's claim records: UID → stage.
func claimRecords(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	dir := filepath.Join(root, "var/lib/hostdev/dra/claims")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // renamed away meanwhile
		}
		var r struct {
			Stage string `json:"stage"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("claim record %s does not decode: %v", e.Name(), err)
		}
		out[strings.TrimSuffix(e.Name(), ".json")] = r.Stage
	}
	return out
}

// availableInstances reads a type's available_instances on a parent.
func availableInstances(t *testing.T, root, parent, typ string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "sys/class/mdev_bus", parent, "mdev_supported_types", typ, "available_instances"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// killPodTasks kills the pod's sandbox and containers with SIGKILL, by the
// pid in containerd's state (only while that pid is in the task's cgroup),
// as a power loss would; the number killed.
func killPodTasks(t *testing.T, ns, pod string) int {
	t.Helper()
	tasks, _ := filepath.Glob(lab.Path("containerd", "state", "io.containerd.runtime.v2.task", "*", "*"))
	n := 0
	for _, dir := range tasks {
		cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			continue
		}
		var spec struct {
			Annotations map[string]string `json:"annotations"`
		}
		if json.Unmarshal(cfg, &spec) != nil || spec.Annotations["io.kubernetes.cri.sandbox-name"] != pod ||
			spec.Annotations["io.kubernetes.cri.sandbox-namespace"] != ns {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "init.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if !strings.Contains(string(cg), filepath.Base(dir)) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

func TestDRAFaults(t *testing.T) {
	top := t
	bin := draBin(t)
	ns := namespace(t, "dra-faults")
	root := startSlowSim(t, bin)
	h := startDRA(t, bin, faultsDriver, root)
	class := deviceClass(t, h.driver, "mdev")
	cel := fmt.Sprintf(`device.attributes[%q].type == %q && device.attributes[%q].parent == %q`, h.driver, faultsType, h.driver, faultsGPU)
	ctx := context.Background()
	var uid, uuid string

	t.Run("kill-9-of-the-driver-mid-prepare", func(t *testing.T) {
		claimPod(t, top, ns, "k-0", class, cel, h.driver)
		c, err := cs.ResourceV1().ResourceClaims(ns).Get(ctx, "k-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uid = string(c.UID)
		// The record says `preparing` from before the kernel is asked until
		// the (8 s) create is done: the driver is waiting on hostdevd.
		eventually(t, "k-0's prepare under way in hostdevd", 2*time.Minute, func() error {
			if st := claimRecords(t, root)[uid]; st != "preparing" {
				return fmt.Errorf("claim record stage %q", st)
			}
			return nil
		})
		kill(t, h.plugin)
		if st := claimRecords(t, root)[uid]; st != "preparing" {
			t.Fatalf("the prepare was over (record %q) before the driver was killed: the kill was not mid-prepare", st)
		}
		h.startPlugin(t)
		eventually(t, "pod k-0 Running after the driver's restart", 4*time.Minute, func() error {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "k-0", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning {
				return fmt.Errorf("%s", describe(ctx, ns, "k-0"))
			}
			return nil
		})
		got := mdevsOfType(root, faultsType)
		if len(got) != 1 {
			t.Fatalf("the host has %s mdevs %v, want one (prepared once)", faultsType, got)
		}
		uuid = got[0]
		recs := claimRecords(t, root)
		if len(recs) != 1 || recs[uid] != "prepared" {
			t.Fatalf("claim records %v, want %s prepared alone", recs, uid)
		}
		log := podLog(t, ns, "k-0")
		if !strings.Contains(log, uuid) {
			t.Errorf("the container does not see mdev %s:\n%s", uuid, log)
		}
	})

	t.Run("simulated-reboot", func(t *testing.T) {
		// k-0 (restartPolicy Never, from above) and r-0 (Always) run.
		claimPodWith(t, top, ns, "r-0", class, cel, h.driver, func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyAlways })
		waitRunning(t, ns, "r-0")
		rc, err := cs.ResourceV1().ResourceClaims(ns).Get(ctx, "r-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ruid := string(rc.UID)
		var ruuid string
		for _, u := range mdevsOfType(root, faultsType) {
			if u != uuid {
				ruuid = u
			}
		}
		if ruuid == "" || len(mdevsOfType(root, faultsType)) != 2 {
			t.Fatalf("want k-0's and r-0's mdevs, have %v", mdevsOfType(root, faultsType))
		}
		_, units0, err := h.counterOf(ctx, faultsGPUPrefix)
		if err != nil {
			t.Fatal(err)
		}
		r0, err := cs.CoreV1().Pods(ns).Get(ctx, "r-0", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}

		// Power off: everything dies at once.
		kill(t, h.plugin)
		kill(t, h.hostdevd)
		if _, err := lab.KillKubelet(); err != nil {
			t.Fatal(err)
		}
		for _, pod := range []string{"k-0", "r-0"} {
			if n := killPodTasks(t, ns, pod); n == 0 {
				t.Fatalf("no task of pod %s was found to kill", pod)
			}
		}
		// The hardware and /run forget.
		if out, err := exec.Command(filepath.Join(bin, "hostdev-sim"), "reboot", "--root", root).CombinedOutput(); err != nil {
			t.Fatalf("hostdev-sim reboot: %v\n%s", err, out)
		}
		if got := mdevsOfType(root, faultsType); len(got) != 0 {
			t.Fatalf("after the reboot the host still has %v", got)
		}
		for _, u := range []string{uid, ruid} {
			specs, _ := filepath.Glob(filepath.Join(lab.CDIDir(), "*"+u+"*"))
			for _, s := range specs {
				_ = os.Remove(s)
			}
		}

		// Power on: hostdevd (a system service), the kubelet, the driver.
		h.startHostdevd(t)
		if err := lab.StartKubelet(); err != nil {
			t.Fatalf("the kubelet did not come back: %v", err)
		}
		h.startPlugin(t)

		// r-0 is restarted with its device made again; k-0, which is never
		// restarted, failed and its claim was unprepared: nothing of it made.
		eventually(t, "pod r-0 running again with its mdev, k-0 failed without one", 5*time.Minute, func() error {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, "r-0", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready {
				return fmt.Errorf("%s", describe(ctx, ns, "r-0"))
			}
			if p.Status.ContainerStatuses[0].ContainerID == r0.Status.ContainerStatuses[0].ContainerID {
				return fmt.Errorf("r-0 still has its container from before the reboot")
			}
			k, err := cs.CoreV1().Pods(ns).Get(ctx, "k-0", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if k.Status.Phase != corev1.PodFailed {
				return fmt.Errorf("k-0 is %s", k.Status.Phase)
			}
			if got := mdevsOfType(root, faultsType); len(got) != 1 || got[0] != ruuid {
				return fmt.Errorf("the host has %s mdevs %v, want r-0's [%s]", faultsType, got, ruuid)
			}
			if recs := claimRecords(t, root); len(recs) != 1 || recs[ruid] != "prepared" {
				return fmt.Errorf("claim records %v, want r-0's %s prepared alone", recs, ruid)
			}
			return nil
		})
		// The new container sees the device made again (its CDI spec was
		// written again).
		b, err := cs.CoreV1().Pods(ns).GetLogs("r-0", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil || !strings.Contains(string(b), ruuid) {
			t.Errorf("the restarted container does not see mdev %s (%v):\n%s", ruuid, err, b)
		}
		// Published capacity: the GPU's units, less what the claims still
		// allocated on it consume, is what sysfs says can still be made.
		eventually(t, "published capacity against sysfs after the reboot", 2*time.Minute, func() error {
			_, units, err := h.counterOf(ctx, faultsGPUPrefix)
			if err != nil {
				return err
			}
			claims, err := cs.ResourceV1().ResourceClaims(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			held := 0
			for _, c := range claims.Items {
				if c.Status.Allocation != nil {
					for _, r := range c.Status.Allocation.Devices.Results {
						if r.Driver == h.driver {
							held++
						}
					}
				}
			}
			n, _ := strconv.Atoi(units)
			avail := availableInstances(t, root, faultsGPU, faultsType)
			if units != units0 || n-held*faultsTypeCost != avail*faultsTypeCost {
				return fmt.Errorf("published units %s (before the reboot %s), %d allocated, against %d %s that sysfs says can be made",
					units, units0, held, avail, faultsType)
			}
			return nil
		})
		deleteClaimPod(ns, "r-0")
	})

	t.Run("nothing-left-after-the-pod", func(t *testing.T) {
		deleteClaimPod(ns, "k-0")
		countIs(t, faultsType+" mdevs after k-0 is deleted", 0, func() []string { return mdevsOfType(root, faultsType) })
		eventually(t, "no record and no CDI spec of claim k-0", time.Minute, func() error {
			var left []string
			for u := range claimRecords(t, root) {
				left = append(left, "record "+u)
			}
			if uid != "" {
				specs, _ := filepath.Glob(filepath.Join(lab.CDIDir(), "*"+uid+"*"))
				left = append(left, specs...)
			}
			if len(left) > 0 {
				return fmt.Errorf("left: %v", left)
			}
			return nil
		})
		countIs(t, faultsType+" mdevs after r-0 is deleted", 0, func() []string { return mdevsOfType(root, faultsType) })
		if n := availableInstances(t, root, faultsGPU, faultsType); n != 16 {
			t.Errorf("%s available_instances %d after everything is gone, want 16", faultsType, n)
		}
	})

	t.Run("a-claim-the-apiserver-no-longer-has", func(t *testing.T) {
		// A record hostdevd holds for a claim the apiserver does not have,
		// as a kubelet that lost its checkpoint leaves one: made here
		// through hostdevd's API while the driver is down. The driver,
		// started again, unprepares it once it has been missing for its
		// grace period (2 minutes, swept every minute): the device and the
		// record go.
		var dev string
		for name, d := range h.devices(t) {
			if attr(d, h.driver, "type") == faultsType && attr(d, h.driver, "parent") == faultsGPU {
				dev = name
				break
			}
		}
		if dev == "" {
			t.Fatalf("no published %s device on %s", faultsType, faultsGPU)
		}
		kill(t, h.plugin)
		ghost := "3f0c9a52-8d4e-4c8b-9a57-0d3c1e2b4a61"
		body := fmt.Sprintf(`{"claim":{"uid":%q,"namespace":%q,"name":"ghost-0"},"devices":[{"request":"gpu","device":%q}]}`, ghost, ns, dev)
		if out, err := hostdevdPost(h.socket, "/v1/dra/prepare", body); err != nil {
			t.Fatalf("prepare of a claim the apiserver does not have, through hostdevd: %v", err)
		} else if st := claimRecords(t, root)[ghost]; st != "prepared" {
			t.Fatalf("its record is %q after prepare answered %s", st, out)
		}
		countIs(t, faultsType+" mdevs of the ghost claim", 1, func() []string { return mdevsOfType(root, faultsType) })
		h.startPlugin(t)
		eventually(t, "the ghost claim unprepared by the driver", 5*time.Minute, func() error {
			if st, ok := claimRecords(t, root)[ghost]; ok {
				return fmt.Errorf("its record is still there (%s)", st)
			}
			if got := mdevsOfType(root, faultsType); len(got) != 0 {
				return fmt.Errorf("its mdev is still there: %v", got)
			}
			return nil
		})
		logs, _ := filepath.Glob(lab.Path("logs", "hostdev-dra-"+h.driver+"-*.log"))
		said := false
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			said = said || strings.Contains(string(b), "unprepared claim "+ns+"/ghost-0 ("+ghost+"), which the apiserver no longer has")
		}
		if !said {
			t.Errorf("no driver log says it unprepared ghost-0: %v", logs)
		}
	})
}

// hostdevdPost sends one request to hostdevd's socket and gives the body of
// a 2xx answer, or an error with the body of another.
func hostdevdPost(sock, path, body string) (string, error) {
	c := &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
	r, err := c.Post("http://hostdevd"+path, "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode/100 != 2 {
		return string(b), fmt.Errorf("%s: %s", r.Status, b)
	}
	return string(b), nil
}
