package labtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestDeployManifestsServerDryRun: every manifest under deploy/kubernetes
// passes `kubectl apply --dry-run=server` against the lab's apiserver (its
// admission and validation, not only the schema). The namespace they go
// into is made for real first: a server-side dry run of a namespaced object
// needs its namespace to exist. deploy/kubevirt needs KubeVirt's CRDs,
// which the lab does not have.
func TestDeployManifestsServerDryRun(t *testing.T) {
	needLab(t)
	ctx := ctxFor(t, 2*time.Minute)
	const ns = "hostdev-system"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	files, err := filepath.Glob("../../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("deploy/kubernetes has %d manifests (%v)", len(files), err)
	}
	for _, f := range files {
		c := exec.CommandContext(ctx, filepath.Join(lab.Bin, "kubectl"), "apply", "--dry-run=server", "-f", f)
		c.Env = append(os.Environ(), "KUBECONFIG="+lab.Kubeconfig())
		out, err := c.CombinedOutput()
		if err != nil {
			t.Errorf("kubectl apply --dry-run=server -f %s: %v\n%s", filepath.Base(f), err, out)
		} else {
			t.Logf("%s: %s", filepath.Base(f), out)
		}
	}
}
