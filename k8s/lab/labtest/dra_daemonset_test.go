package labtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"hostdev.local/k8s/lab/cluster"
)

const (
	deployDir   = "../../../deploy/kubernetes"
	dsNamespace = "hostdev-system"
	dsLabel     = "hostdev.io/hostdevd"
)

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	c := exec.Command(filepath.Join(lab.Bin, "kubectl"), args...)
	c.Env = append(os.Environ(), "KUBECONFIG="+lab.Kubeconfig())
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// namespaceGone waits until the namespace is deleted for good (a deleted
// namespace is Terminating for a while; applying into it is refused).
func namespaceGone(t *testing.T, ns string) {
	t.Helper()
	eventually(t, "namespace "+ns+" gone", 3*time.Minute, func() error {
		_, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
}

// labDaemonSet reads deploy/kubernetes/daemonset.yaml and fits it to the
// lab's node, changing only where the lab differs from a kubeadm node:
// the kubelet's and the CDI directories are elsewhere (mounted at the same
// paths inside, since the driver tells the kubelet its socket's path), the
// node's hostdevd socket is a simulated host's, pods have no pod network
// (host network, and the apiserver at 127.0.0.1: no kube-proxy), and the
// driver gets its own name beside the other tests' drivers.
func labDaemonSet(t *testing.T, driverName, socketDir string) *appsv1.DaemonSet {
	t.Helper()
	f, err := os.Open(filepath.Join(deployDir, "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ds appsv1.DaemonSet
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&ds); err != nil {
		t.Fatalf("daemonset.yaml does not decode: %v", err)
	}
	u, err := url.Parse(lab.APIServerURL())
	if err != nil {
		t.Fatal(err)
	}
	spec := &ds.Spec.Template.Spec
	spec.HostNetwork = true
	c := &spec.Containers[0]
	c.ImagePullPolicy = corev1.PullNever
	c.Args = []string{"--driver=" + driverName, "--socket=/run/hostdev/hostdev.sock",
		"--kubelet-dir=" + lab.KubeletRootDir(), "--cdi-dir=" + lab.CDIDir()}
	c.Env = append(c.Env,
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: u.Hostname()},
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: u.Port()})
	host := map[string]string{
		"hostdev-socket":   socketDir,
		"plugins-registry": filepath.Join(lab.KubeletRootDir(), "plugins_registry"),
		"plugins":          filepath.Join(lab.KubeletRootDir(), "plugins"),
		"cdi":              lab.CDIDir(),
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		p, ok := host[v.Name]
		if !ok || v.HostPath == nil {
			t.Fatalf("daemonset.yaml has volume %q, which the lab does not know", v.Name)
		}
		v.HostPath.Path = p
	}
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.Name != "hostdev-socket" {
			m.MountPath = host[m.Name]
		}
	}
	return &ds
}

// TestDRADaemonSet: the driver deployed as deploy/ says — its image built
// from the hostdev-dra binary (cluster.BuildDriverImage) and imported into
// the node's containerd, rbac.yaml and admission.yaml applied as they are,
// daemonset.yaml fitted to the lab (labDaemonSet) — run by the real
// kubelet: the pod runs with the ServiceAccount's token under the
// least-privilege ClusterRole, the kubelet registers the driver, its slices
// are published (admission.yaml lets it write its own node's), the same
// ServiceAccount on another node may not write them, and a claim's pod gets
// an mdev that goes with the pod.
func TestDRADaemonSet(t *testing.T) {
	bin := draBin(t)
	ctx := ctxFor(t, 10*time.Minute)
	const driverName = "ds.hostdev.io"
	ds0 := labDaemonSet(t, driverName, "/")
	image := ds0.Spec.Template.Spec.Containers[0].Image
	archive := lab.Path("images", "hostdev-dra.oci.tar")
	if err := cluster.BuildDriverImage(filepath.Join(bin, "hostdev-dra"), image, archive); err != nil {
		t.Fatalf("cannot build the driver's image: %v", err)
	}
	if err := lab.ImportImage(archive, image); err != nil {
		t.Fatal(err)
	}

	// A simulated host with its hostdevd, whose socket directory stands for
	// the node's /run/hostdev.
	root := startSim(t, bin, "demo")
	sockDir, err := os.MkdirTemp("", "hostdev-ds-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	h := &draHost{bin: bin, driver: driverName, root: root, socket: filepath.Join(sockDir, "hostdev.sock"), owner: t}
	h.startHostdevd(t)

	namespaceGone(t, dsNamespace) // TestDeployManifestsServerDryRun's, if it ran first
	t.Cleanup(func() {
		_ = cs.ResourceV1().ResourceSlices().DeleteCollection(context.Background(), metav1.DeleteOptions{},
			metav1.ListOptions{FieldSelector: "spec.driver=" + driverName})
	})
	t.Cleanup(func() { namespaceGone(t, dsNamespace) })
	t.Log(kubectl(t, "apply", "-f", filepath.Join(deployDir, "rbac.yaml")))
	t.Cleanup(func() {
		c := exec.Command(filepath.Join(lab.Bin, "kubectl"), "delete", "--wait=false", "-f", filepath.Join(deployDir, "rbac.yaml"))
		c.Env = append(os.Environ(), "KUBECONFIG="+lab.Kubeconfig())
		_ = c.Run()
	})
	t.Log(kubectl(t, "apply", "-f", filepath.Join(deployDir, "admission.yaml")))
	t.Cleanup(func() {
		c := exec.Command(filepath.Join(lab.Bin, "kubectl"), "delete", "--wait=false", "-f", filepath.Join(deployDir, "admission.yaml"))
		c.Env = append(os.Environ(), "KUBECONFIG="+lab.Kubeconfig())
		_ = c.Run()
	})
	label := func(v any) {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{dsLabel: v}}})
		if _, err := cs.CoreV1().Nodes().Patch(context.Background(), cluster.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Errorf("cannot label node %s: %v", cluster.NodeName, err)
		}
	}
	label("true")
	t.Cleanup(func() { label(nil) })

	ds := labDaemonSet(t, driverName, sockDir)
	if _, err := cs.AppsV1().DaemonSets(dsNamespace).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create the DaemonSet: %v", err)
	}
	var pod string
	eventually(t, "the DaemonSet's pod Running", 3*time.Minute, func() error {
		l, err := cs.CoreV1().Pods(dsNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=hostdev-dra"})
		if err != nil {
			return err
		}
		if len(l.Items) != 1 {
			return fmt.Errorf("%d pods", len(l.Items))
		}
		pod = l.Items[0].Name
		if l.Items[0].Status.Phase != corev1.PodRunning {
			return fmt.Errorf("%s", describe(ctx, dsNamespace, pod))
		}
		return nil
	})
	eventually(t, "the kubelet registered "+driverName, 2*time.Minute, func() error {
		b, err := cs.CoreV1().Pods(dsNamespace).GetLogs(pod, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "the kubelet registered driver "+driverName) {
			return fmt.Errorf("the driver's log so far:\n%s", b)
		}
		return nil
	})
	eventually(t, driverName+"'s slices published from the pod", 2*time.Minute, func() error {
		_, err := h.slices(ctx)
		return err
	})

	// admission.yaml: the driver's ServiceAccount, from a pod on another
	// node (its token's node), may not write this node's slices.
	rc, err := clientcmd.BuildConfigFromFlags("", lab.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	rc.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + dsNamespace + ":hostdev-dra",
		Extra:    map[string][]string{"authentication.kubernetes.io/node-name": {"elsewhere"}},
	}
	as, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	node := cluster.NodeName
	forged := &resourcev1.ResourceSlice{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "forged-"},
		Spec: resourcev1.ResourceSliceSpec{
			Driver:   driverName,
			NodeName: &node,
			Pool:     resourcev1.ResourcePool{Name: "forged", Generation: 1, ResourceSliceCount: 1},
			Devices:  []resourcev1.Device{},
		},
	}
	eventually(t, "a slice of this node written as the driver on another node refused", time.Minute, func() error {
		s, err := as.ResourceV1().ResourceSlices().Create(ctx, forged, metav1.CreateOptions{})
		if err == nil {
			_ = cs.ResourceV1().ResourceSlices().Delete(ctx, s.Name, metav1.DeleteOptions{})
			return fmt.Errorf("created %s", s.Name)
		}
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "may not write a ResourceSlice of node "+node) {
			return fmt.Errorf("refused, but not by admission.yaml: %v", err)
		}
		return nil
	})

	// A claim's pod gets its mdev from the deployed driver.
	ns := namespace(t, "dra-ds")
	class := deviceClass(t, driverName, "mdev")
	cel := fmt.Sprintf(`device.attributes[%q].type == "nvidia-230"`, driverName)
	claimPod(t, t, ns, "ds-0", class, cel, driverName)
	waitRunning(t, ns, "ds-0")
	got := mdevsOfType(root, "nvidia-230")
	if len(got) != 1 {
		t.Fatalf("want one nvidia-230 mdev on the host, have %v", got)
	}
	log := podLog(t, ns, "ds-0")
	if !strings.Contains(log, "HOSTDEV_MDEV_GPU="+got[0]+"\n") {
		t.Errorf("the container's environment (from the deployed driver's CDI spec) does not name mdev %s:\n%s", got[0], log)
	}
	if a := metadataAttrs(t, log); a["mdevUUID"]["string"] != got[0] {
		t.Errorf("the metadata file's mdevUUID is %v, want %s", a["mdevUUID"], got[0])
	}
	deleteClaimPod(ns, "ds-0")
	countIs(t, "nvidia-230 mdevs after the pod is deleted", 0, func() []string { return mdevsOfType(root, "nvidia-230") })

	if err := cs.AppsV1().DaemonSets(dsNamespace).Delete(ctx, ds.Name, metav1.DeleteOptions{}); err != nil {
		t.Errorf("cannot delete the DaemonSet: %v", err)
	}
}
