package labtest

// CEL selectors on attributes a device may lack (resource.k8s.io/v1's
// CELDeviceSelector: a reference to a missing attribute is an evaluation
// error and aborts the claim's allocation, not a non-match). hostdev leaves
// out what the kernel does not tell (numaNode, typeName, vendor, deviceID,
// driver, driverVersion); the README and the deploy examples guard such a
// selector with `.?name.orValue(...)`. demo's mtty and vfio-ap parents are
// not PCI functions and have no vendor: a bare vendor selector that no
// device matches (so the scheduler evaluates every device) makes the pod
// unschedulable with the scheduler's "CEL runtime error", the guarded one
// is allocated.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func checkCELGuard(t, top *testing.T, demo *draHost, ns, class string) {
	bare := fmt.Sprintf(`device.attributes[%q].vendor == "0xffff"`, demo.driver)
	claimPod(t, top, ns, "g-0", class, bare, demo.driver)
	t.Cleanup(func() { deleteClaimPod(ns, "g-0") })
	eventually(t, "g-0 unschedulable for a missing attribute", 2*time.Minute, func() error {
		evs, err := podEvents(context.Background(), ns, "g-0")
		if err != nil {
			return err
		}
		for _, e := range evs {
			if strings.HasPrefix(e, "FailedScheduling:") && strings.Contains(e, "CEL runtime error") && strings.Contains(e, "vendor") {
				return nil
			}
		}
		return fmt.Errorf("%s", describe(context.Background(), ns, "g-0"))
	})
	deleteClaimPod(ns, "g-0")

	guarded := fmt.Sprintf(`device.attributes[%q].?vendor.orValue("") == "0x10de" && device.attributes[%q].type == "nvidia-222"`, demo.driver, demo.driver)
	claimPod(t, top, ns, "g-1", class, guarded, demo.driver)
	t.Cleanup(func() { deleteClaimPod(ns, "g-1") })
	waitRunning(t, ns, "g-1")
	deleteClaimPod(ns, "g-1")
	countIs(t, "nvidia-222 mdevs after g-1 is deleted", 0, func() []string { return mdevsOfType(demo.root, "nvidia-222") })
}
