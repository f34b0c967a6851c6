package labtest

// TestDRAScale: acceptance line 4 of the driver, on a `large` simulated
// host (16 NVIDIA-like GPUs, 32 of each type per GPU, one type at a time)
// served as scale.hostdev.io.
//
// 200 claims in 20 pods of 10 claims each (the lab's kubelet runs at most
// 32 pods), every claim for one nvidia-256 on five named GPUs: capacity
// 5 × 32 = 160. The real scheduler allocates exactly 160 (16 pods; a pod's
// claims are allocated all or none) and refuses the other 4 pods; the
// kubelet starts the 16 and the driver prepares their 160 claims; sysfs of
// the simulated host then holds exactly 160 nvidia-256 mdevs, 32 on each of
// the five GPUs (whose available_instances read 0), none anywhere else.
// Deleting the pods removes every one.
//
// It also measures, printed as a table and never asserted: the plugin's
// prepare time per claim (p50, p99, from the driver's own log line for each
// claim, and where it went: the claim read, hostdevd, the files) and the
// time from a change on the host (an mdev made on a sixth GPU through
// hostdevd, removed again, and made behind hostdevd's back) until the
// apiserver holds the changed pool, with the driver's own account of that
// publish. bench/dra.sh runs it on release binaries.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	scalePods      = 20
	scalePerPod    = 10
	scaleType      = "nvidia-256"
	scalePerGPU    = 32
	scaleChangeGPU = "0000:1f:00.0"
	scaleChangeTyp = "nvidia-286"
)

var scaleGPUs = []string{"0000:10:00.0", "0000:11:00.0", "0000:12:00.0", "0000:13:00.0", "0000:14:00.0"}

// scalePod makes a pod holding claims name-0 … name-(n-1), each one device
// of class selected by cel; pod and claims are deleted when owner ends.
func scalePod(t, owner *testing.T, ns, name, class, cel string, n int) {
	t.Helper()
	ctx := context.Background()
	p := testPod(name, "exec sleep 3600")
	for i := 0; i < n; i++ {
		cn := fmt.Sprintf("%s-%d", name, i)
		c := &resourcev1.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: cn},
			Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{Requests: []resourcev1.DeviceRequest{{
				Name: "gpu",
				Exactly: &resourcev1.ExactDeviceRequest{
					DeviceClassName: class,
					Selectors:       []resourcev1.DeviceSelector{{CEL: &resourcev1.CELDeviceSelector{Expression: cel}}},
				},
			}}}},
		}
		if _, err := cs.ResourceV1().ResourceClaims(ns).Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatalf("cannot create claim %s: %v", cn, err)
		}
		ref := fmt.Sprintf("c%d", i)
		p.Spec.ResourceClaims = append(p.Spec.ResourceClaims, corev1.PodResourceClaim{Name: ref, ResourceClaimName: &cn})
		p.Spec.Containers[0].Resources.Claims = append(p.Spec.Containers[0].Resources.Claims, corev1.ResourceClaim{Name: ref})
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create pod %s: %v", name, err)
	}
	owner.Cleanup(func() {
		deletePod(ns, name)
		for i := 0; i < n; i++ {
			_ = cs.ResourceV1().ResourceClaims(ns).Delete(context.Background(), fmt.Sprintf("%s-%d", name, i), metav1.DeleteOptions{})
		}
	})
}

// mdevParents maps each simulated mdev of typ to its parent.
func mdevParents(root, typ string) map[string]string {
	out := map[string]string{}
	for _, u := range mdevsOfType(root, typ) {
		l, err := os.Readlink(filepath.Join(root, "sys/bus/mdev/devices", u))
		if err == nil {
			out[u] = filepath.Base(filepath.Dir(l))
		}
	}
	return out
}

// prepareTimes reads the driver's "prepare NS/NAME (UID): done in X ms
// (Y ms with the lock held)" lines for claims in ns from its logs, the
// first for each claim (a kubelet that gave up waiting asks again, and is
// answered again): X (from the kubelet's call: with the wait for other
// calls, which the driver serializes) and Y (the prepare itself), sorted.
func prepareTimes(t *testing.T, driverName, ns string) (total, work []float64, phases [3][]float64) {
	t.Helper()
	logs, _ := filepath.Glob(lab.Path("logs", "hostdev-dra-"+driverName+"-*.log"))
	re := regexp.MustCompile(`hostdev-dra: prepare ` + regexp.QuoteMeta(ns) + `/\S+ \((\S+)\): done in ([0-9.]+) ms \(([0-9.]+) ms with the lock held(?:: claim read ([0-9.]+) ms, hostdevd ([0-9.]+) ms, files ([0-9.]+) ms)?\)`)
	seen := map[string]bool{}
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if seen[m[1]] {
				continue
			}
			seen[m[1]] = true
			x, _ := strconv.ParseFloat(m[2], 64)
			y, _ := strconv.ParseFloat(m[3], 64)
			total = append(total, x)
			work = append(work, y)
			for i := range phases {
				if m[4+i] != "" {
					z, _ := strconv.ParseFloat(m[4+i], 64)
					phases[i] = append(phases[i], z)
				}
			}
		}
	}
	sort.Float64s(total)
	sort.Float64s(work)
	for i := range phases {
		sort.Float64s(phases[i])
	}
	return total, work, phases
}

// publishLines returns the driver's "published …" lines from its logs.
func publishLines(driverName string) []string {
	logs, _ := filepath.Glob(lab.Path("logs", "hostdev-dra-"+driverName+"-*.log"))
	var out []string
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "hostdev-dra: published ") {
				out = append(out, l)
			}
		}
	}
	return out
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

// counterOf returns the pool's generation and the value of counter "units"
// of the counter set whose name starts with prefix, from a whole pool.
func (h *draHost) counterOf(ctx context.Context, prefix string) (int64, string, error) {
	sl, err := h.slices(ctx)
	if err != nil {
		return 0, "", err
	}
	for _, s := range sl {
		for _, c := range s.Spec.SharedCounters {
			// The parent's units set, not its types set (same prefix).
			if u, ok := c.Counters["units"]; ok && strings.HasPrefix(c.Name, prefix) {
				return s.Spec.Pool.Generation, u.Value.String(), nil
			}
		}
	}
	return 0, "", fmt.Errorf("no counter set %s* in %d slices", prefix, len(sl))
}

func TestDRAScale(t *testing.T) {
	top := t
	bin := draBin(t)
	ns := namespace(t, "dra-scale")
	root := startSim(t, bin, "large")
	h := startDRA(t, bin, "scale.hostdev.io", root)
	class := deviceClass(t, h.driver, "mdev")
	quoted := make([]string, len(scaleGPUs))
	for i, g := range scaleGPUs {
		quoted[i] = strconv.Quote(g)
	}
	cel := fmt.Sprintf(`device.attributes[%q].type == %q && device.attributes[%q].parent in [%s]`,
		h.driver, scaleType, h.driver, strings.Join(quoted, ", "))
	capacity := len(scaleGPUs) * scalePerGPU
	fit := capacity / scalePerPod

	t.Run("200-claims", func(t *testing.T) {
		started := time.Now()
		for p := 0; p < scalePods; p++ {
			scalePod(t, top, ns, fmt.Sprintf("s-%02d", p), class, cel, scalePerPod)
		}
		// Every pod either runs or is refused by the scheduler for its claims.
		var running, refused []string
		eventually(t, "every pod running or refused for its claims", 10*time.Minute, func() error {
			running, refused = nil, nil
			var waiting []string
			for p := 0; p < scalePods; p++ {
				name := fmt.Sprintf("s-%02d", p)
				pod, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if pod.Status.Phase == corev1.PodRunning {
					running = append(running, name)
					continue
				}
				if pod.Status.Phase == corev1.PodFailed {
					t.Fatalf("pod %s failed: %s", name, describe(context.Background(), ns, name))
				}
				evs, _ := podEvents(context.Background(), ns, name)
				r := false
				for _, e := range evs {
					if strings.HasPrefix(e, "FailedScheduling:") && strings.Contains(e, "cannot allocate all claims") && pod.Spec.NodeName == "" {
						r = true
					}
				}
				if r {
					refused = append(refused, name)
				} else {
					waiting = append(waiting, name)
				}
			}
			if len(running) < fit || len(waiting) > 0 {
				return fmt.Errorf("%d running, %d refused, waiting: %v", len(running), len(refused), waiting)
			}
			return nil
		})
		took := time.Since(started)
		if len(running) != fit || len(refused) != scalePods-fit {
			t.Fatalf("%d pods run and %d are refused; capacity %d in pods of %d claims wants %d and %d",
				len(running), len(refused), capacity, scalePerPod, fit, scalePods-fit)
		}
		// The apiserver: exactly capacity claims allocated, each one device
		// of this driver, no device twice.
		claims, err := cs.ResourceV1().ResourceClaims(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		devs := h.devices(t)
		seen := map[string]string{}
		for _, c := range claims.Items {
			if c.Status.Allocation == nil {
				continue
			}
			for _, r := range c.Status.Allocation.Devices.Results {
				d, ok := devs[r.Device]
				if r.Driver != h.driver || !ok || attr(d, h.driver, "type") != scaleType {
					t.Errorf("claim %s got %+v, not a %s of %s", c.Name, r, scaleType, h.driver)
				}
				if other, dup := seen[r.Device]; dup {
					t.Errorf("device %s is allocated to %s and %s", r.Device, other, c.Name)
				}
				seen[r.Device] = c.Name
			}
		}
		if len(seen) != capacity {
			t.Errorf("%d devices are allocated, want %d (the five GPUs' capacity)", len(seen), capacity)
		}
		// sysfs: exactly capacity nvidia-256 mdevs, 32 per named GPU, and
		// those GPUs say they can take no more.
		var parents map[string]string
		eventually(t, fmt.Sprintf("%d %s mdevs", capacity, scaleType), time.Minute, func() error {
			parents = mdevParents(root, scaleType)
			if len(parents) != capacity {
				return fmt.Errorf("%d", len(parents))
			}
			return nil
		})
		per := map[string]int{}
		for _, p := range parents {
			per[p]++
		}
		for _, g := range scaleGPUs {
			if per[g] != scalePerGPU {
				t.Errorf("GPU %s has %d %s mdevs, want %d", g, per[g], scaleType, scalePerGPU)
			}
			b, err := os.ReadFile(filepath.Join(root, "sys/class/mdev_bus", g, "mdev_supported_types", scaleType, "available_instances"))
			if err != nil || strings.TrimSpace(string(b)) != "0" {
				t.Errorf("GPU %s's %s available_instances reads %q (%v), want 0", g, scaleType, b, err)
			}
		}
		if len(per) != len(scaleGPUs) {
			t.Errorf("mdevs on %d parents, want %d: %v", len(per), len(scaleGPUs), per)
		}
		total, work, phases := prepareTimes(t, h.driver, ns)
		if len(work) != capacity {
			t.Errorf("the driver logged prepares of %d claims done, want %d", len(work), capacity)
		}
		t.Logf("scale: %d claims in %d pods, %d allocated and prepared, %d pods refused, all settled in %.1f s",
			scalePods*scalePerPod, scalePods, len(seen), len(refused), took.Seconds())
		t.Logf("| prepare through the plugin, per claim (%s, large host) | claims | p50 (ms) | p99 (ms) | max (ms) |", scaleType)
		t.Logf("| the prepare (claim fetched, hostdevd's prepare, CDI spec and metadata written) | %d | %.1f | %.1f | %.1f |",
			len(work), quantile(work, 0.5), quantile(work, 0.99), quantile(work, 1))
		t.Logf("| from the kubelet's call (with the wait behind other pods' claims) | %d | %.1f | %.1f | %.1f |",
			len(total), quantile(total, 0.5), quantile(total, 0.99), quantile(total, 1))
		for i, what := range []string{"of it: the claim read from the apiserver", "of it: hostdevd's prepare (with the 5 ms create)", "of it: the CDI spec and metadata files"} {
			if x := phases[i]; len(x) > 0 {
				t.Logf("| %s | %d | %.1f | %.1f | %.1f |", what, len(x), quantile(x, 0.5), quantile(x, 0.99), quantile(x, 1))
			}
		}

		// The refused pods first: capacity the running ones free must not
		// go to them.
		for _, name := range append(refused, running...) {
			deletePod(ns, name)
		}
		countIs(t, scaleType+" mdevs after the pods are deleted", 0, func() []string { return mdevsOfType(root, scaleType) })
	})

	t.Run("publish-after-a-change", func(t *testing.T) {
		ctx := context.Background()
		prefix := strings.NewReplacer(":", "-", ".", "-").Replace(scaleChangeGPU) + "-"
		var gen int64
		eventually(t, "the pool whole with "+scaleChangeGPU+"'s 32 units", 2*time.Minute, func() error {
			g, u, err := h.counterOf(ctx, prefix)
			if err != nil {
				return err
			}
			if u != "32" {
				return fmt.Errorf("units %s", u)
			}
			gen = g
			return nil
		})
		// hostdevctl through hostdevd (as with the daemon running: its
		// socket answers), or straight at the simulated sysfs, behind
		// hostdevd's back (no uevent comes from the simulator; on a real
		// host the kernel's uevent tells hostdevd).
		hostdevctl := func(viaDaemon bool, args ...string) {
			c := exec.Command(filepath.Join(bin, "hostdevctl"), args...)
			c.Env = append(os.Environ(), "HOSTDEV_ROOT="+root)
			if viaDaemon {
				c.Env = append(c.Env, "HOSTDEV_SOCKET="+h.socket)
			}
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("hostdevctl %v: %v\n%s", args, err, out)
			}
		}
		uuid := "5ca1ab1e-0000-4000-8000-000000000001"
		t.Cleanup(func() {
			c := exec.Command(filepath.Join(bin, "hostdevctl"), "mdev", "stop", "-u", uuid)
			c.Env = append(os.Environ(), "HOSTDEV_ROOT="+root)
			_ = c.Run()
		})
		// measure makes a change and times it until the apiserver holds
		// the GPU's units as want (each change flips them): a watch of the
		// driver's slices, opened before the change, gives the moment the
		// apiserver sends the changed slice (a list every 100 ms took a
		// few hundred ms itself on this pool of 16 384 devices, and blurred
		// the figure by as much). The pool's generation is then read back
		// whole and checked, so the watched write is the one that stays.
		type row struct {
			what    string
			seen    time.Duration
			gen     string
			account string
		}
		var rows []row
		unitsOf := func(s *resourcev1.ResourceSlice) (string, bool) {
			for _, c := range s.Spec.SharedCounters {
				if u, ok := c.Counters["units"]; ok && strings.HasPrefix(c.Name, prefix) {
					return u.Value.String(), true
				}
			}
			return "", false
		}
		measure := func(what, want string, change func()) {
			before := len(publishLines(h.driver))
			sel := metav1.ListOptions{FieldSelector: "spec.driver=" + h.driver, Limit: 1}
			l, err := cs.ResourceV1().ResourceSlices().List(ctx, sel)
			if err != nil {
				t.Fatalf("%s: cannot list the slices: %v", what, err)
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			rv := l.ResourceVersion
			changed := time.Now()
			var seen time.Duration
			started := false
			for seen == 0 {
				w, err := cs.ResourceV1().ResourceSlices().Watch(wctx, metav1.ListOptions{FieldSelector: sel.FieldSelector, ResourceVersion: rv})
				if err != nil {
					t.Fatalf("%s: cannot watch the slices from %s: %v", what, rv, err)
				}
				if !started {
					changed = time.Now()
					change()
					started = true
				}
				for ev := range w.ResultChan() {
					sl, ok := ev.Object.(*resourcev1.ResourceSlice)
					if !ok {
						continue // a bookmark or an error: watched again from rv
					}
					rv = sl.ResourceVersion
					if u, ok := unitsOf(sl); ok && u == want && (ev.Type == "ADDED" || ev.Type == "MODIFIED") {
						seen = time.Since(changed)
						break
					}
				}
				w.Stop()
				if seen == 0 && wctx.Err() != nil {
					t.Fatalf("%s: %s's units are not published as %s after 5 minutes", what, scaleChangeGPU, want)
				}
			}
			var genNote string
			eventually(t, fmt.Sprintf("%s: the pool whole with %s's units %s", what, scaleChangeGPU, want), time.Minute, func() error {
				g, u, err := h.counterOf(ctx, prefix)
				if err != nil {
					return err
				}
				if u != want {
					return fmt.Errorf("generation %d, units %s", g, u)
				}
				genNote = fmt.Sprintf("generation %d → %d", gen, g)
				gen = g
				return nil
			})
			account := "(the driver logged no publish)"
			if lines := publishLines(h.driver); len(lines) > before {
				account = lines[len(lines)-1]
			}
			rows = append(rows, row{what, seen, genNote, account})
		}
		measure("an mdev made through hostdevd on "+scaleChangeGPU, "31", func() {
			hostdevctl(true, "mdev", "start", "-u", uuid, "-p", scaleChangeGPU, "-t", scaleChangeTyp)
		})
		measure("that mdev removed through hostdevd", "32", func() {
			hostdevctl(true, "mdev", "stop", "-u", uuid)
		})
		measure("an mdev made behind hostdevd's back (no uevent: the driver's poll)", "31", func() {
			hostdevctl(false, "mdev", "start", "-u", uuid, "-p", scaleChangeGPU, "-t", scaleChangeTyp)
		})
		t.Logf("| publish after a change | seen in the apiserver after (ms) | pool | the driver's account |")
		for _, r := range rows {
			t.Logf("| %s | %d | %s | %s |", r.what, r.seen.Milliseconds(), r.gen, r.account)
		}
	})
}
