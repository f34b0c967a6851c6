package labtest

// TestDRAHostileClaims: acceptance line 5 of the driver (bad input), on a
// fresh `demo` simulated host served as hostile.hostdev.io. Claims whose
// opaque parameters for the driver are hostile — an unknown field, a MAC
// that is not unicast, a MAC on an mdev (which takes none) — are allocated
// by the scheduler, and the kubelet's prepare fails: the pod gets a
// FailedPrepareDynamicResources event with the driver's sentence and
// stable code, and the host gets no device. A 10 MB blob never reaches the
// driver: the apiserver refuses the claim. (A device that vanished before
// its prepare, and a hostdevd that is down, are covered by
// crates/hostdev-core/tests/dra.rs and TestDRADriver's hostdevd-down.)

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// allMdevs counts the simulated host's mdevs.
func allMdevs(root string) int {
	ents, _ := os.ReadDir(filepath.Join(root, "sys/bus/mdev/devices"))
	return len(ents)
}

// configPod makes a claim for one device of class with opaque parameters
// params for driverName, and a pod holding it.
func configPod(t *testing.T, ns, name, class, driverName, params string) error {
	t.Helper()
	ctx := context.Background()
	c := &resourcev1.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: resourcev1.ResourceClaimSpec{Devices: resourcev1.DeviceClaim{
			Requests: []resourcev1.DeviceRequest{{
				Name:    "gpu",
				Exactly: &resourcev1.ExactDeviceRequest{DeviceClassName: class},
			}},
			Config: []resourcev1.DeviceClaimConfiguration{{
				Requests: []string{"gpu"},
				DeviceConfiguration: resourcev1.DeviceConfiguration{Opaque: &resourcev1.OpaqueDeviceConfiguration{
					Driver:     driverName,
					Parameters: runtime.RawExtension{Raw: []byte(params)},
				}},
			}},
		}},
	}
	if _, err := cs.ResourceV1().ResourceClaims(ns).Create(ctx, c, metav1.CreateOptions{}); err != nil {
		return err
	}
	p := testPod(name, "exec sleep 3600")
	p.Spec.ResourceClaims = []corev1.PodResourceClaim{{Name: "gpu", ResourceClaimName: &name}}
	p.Spec.Containers[0].Resources.Claims = []corev1.ResourceClaim{{Name: "gpu"}}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create pod %s: %v", name, err)
	}
	t.Cleanup(func() { deleteClaimPod(ns, name) })
	return nil
}

func TestDRAHostileClaims(t *testing.T) {
	bin := draBin(t)
	ns := namespace(t, "dra-hostile")
	root := startSim(t, bin, "demo")
	h := startDRA(t, bin, "hostile.hostdev.io", root)
	class := deviceClass(t, h.driver, "mdev")
	head := `"apiVersion": "hostdev.io/v1alpha1", "kind": "DeviceConfig"`
	cases := []struct {
		name, params string
		want         []string
	}{
		{"unknown-field", `{` + head + `, "macc": "02:00:00:00:00:01"}`, []string{"unknown field `macc`", "[dra.config-malformed]"}},
		{"multicast-mac", `{` + head + `, "mac": "01:00:5e:00:00:01"}`, []string{"multicast", "[dra.bad_config]"}},
		{"mac-on-an-mdev", `{` + head + `, "mac": "02:00:00:00:00:01"}`, []string{"takes no MAC", "[dra.bad_config]"}},
		{"another-kind", `{"apiVersion": "hostdev.io/v1alpha1", "kind": "Pod"}`, []string{`kind "Pod"`, "[dra.config-malformed]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := allMdevs(root)
			if err := configPod(t, ns, c.name, class, h.driver, c.params); err != nil {
				t.Fatalf("the apiserver refused claim %s: %v", c.name, err)
			}
			eventually(t, "pod "+c.name+"'s prepare refused with the reason", 3*time.Minute, func() error {
				evs, err := podEvents(context.Background(), ns, c.name)
				if err != nil {
					return err
				}
				for _, e := range evs {
					ok := strings.HasPrefix(e, "FailedPrepareDynamicResources:")
					for _, w := range c.want {
						ok = ok && strings.Contains(e, w)
					}
					if ok {
						return nil
					}
				}
				return fmt.Errorf("%v", evs)
			})
			if p, err := cs.CoreV1().Pods(ns).Get(context.Background(), c.name, metav1.GetOptions{}); err == nil && p.Status.Phase == corev1.PodRunning {
				t.Errorf("pod %s runs", c.name)
			}
			if after := allMdevs(root); after != before {
				t.Errorf("the host has %d mdevs, had %d: something was made", after, before)
			}
			deleteClaimPod(ns, c.name)
		})
	}
	t.Run("10MB-blob", func(t *testing.T) {
		blob := `{` + head + `, "mac": "` + strings.Repeat("a", 10<<20) + `"}`
		err := configPod(t, ns, "blob", class, h.driver, blob)
		if err == nil {
			t.Fatalf("the apiserver took a claim with 10 MB of opaque parameters")
		}
		t.Logf("the apiserver refuses it: %.200s", err.Error())
		if _, err := cs.ResourceV1().ResourceClaims(ns).Get(context.Background(), "blob", metav1.GetOptions{}); err == nil {
			t.Errorf("claim blob exists")
		}
	})
}
