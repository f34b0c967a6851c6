package labtest

// Device health (the "Health"): the driver serves the kubelet's
// v1.DRAResourceHealth stream and the real kubelet shows each prepared
// device's health in the pod's status (allocatedResourcesStatus, feature
// gate ResourceHealthStatus). An mdev removed behind hostdev's back turns
// Unhealthy there, with hostdevd's sentence as the message.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podHealth waits until pod's claim "gpu" reports one device with health
// want and a message containing msg.
func podHealth(t *testing.T, ns, pod string, want corev1.ResourceHealthStatus, msg string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s's device %s in the pod's status", pod, want), time.Minute, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var seen []string
		for _, c := range p.Status.ContainerStatuses {
			for _, rs := range c.AllocatedResourcesStatus {
				for _, r := range rs.Resources {
					m := ""
					if r.Message != nil {
						m = *r.Message
					}
					seen = append(seen, fmt.Sprintf("%s %s %s %q", rs.Name, r.ResourceID, r.Health, m))
					if rs.Name == "claim:gpu" && r.Health == want && strings.Contains(m, msg) && len(rs.Resources) == 1 {
						return nil
					}
				}
			}
		}
		return fmt.Errorf("allocatedResourcesStatus %v", seen)
	})
}

func checkHealth(t, top *testing.T, demo *draHost, ns, class, cel string) {
	claimPod(t, top, ns, "h-0", class, cel, demo.driver)
	// Gone when this subtest ends, failed or not: later subtests need the
	// one-type GPU free.
	t.Cleanup(func() { deleteClaimPod(ns, "h-0") })
	waitRunning(t, ns, "h-0")
	got := mdevsOfType(demo.root, "nvidia-222")
	if len(got) != 1 {
		t.Fatalf("want h-0's one nvidia-222 mdev, have %v", got)
	}
	uuid := got[0]
	c, err := cs.ResourceV1().ResourceClaims(ns).Get(context.Background(), "h-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	podHealth(t, ns, "h-0", corev1.ResourceHealthStatusHealthy, "")

	// Removed by hand, as an operator's script or another manager would.
	f, err := os.OpenFile(filepath.Join(demo.root, "sys/bus/mdev/devices", uuid, "remove"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("1")); err != nil {
		t.Fatalf("removing mdev %s by hand: %v", uuid, err)
	}
	_ = f.Close()
	podHealth(t, ns, "h-0", corev1.ResourceHealthStatusUnhealthy, "mdev "+uuid+" (nvidia-222 on 0000:3b:00.0) is gone from the host")

	// The pod deleted: unprepare finds nothing to remove and forgets the
	// record.
	deleteClaimPod(ns, "h-0")
	record := filepath.Join(demo.root, "var/lib/hostdev/dra/claims", string(c.UID)+".json")
	eventually(t, "no record of claim h-0", time.Minute, func() error {
		if _, err := os.Stat(record); err == nil {
			return fmt.Errorf("%s is still there", record)
		}
		return nil
	})
}
