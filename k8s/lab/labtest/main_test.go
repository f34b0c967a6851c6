// Package labtest is the Kubernetes tier: the tests against one real
// one-node cluster (package cluster) that TestMain starts and stops.
//
// It needs the binaries build.sh built (HOSTDEV_K8S_LAB_BIN), root, cgroups,
// Debian's busybox-static and containernetworking-plugins; `cargo xtask test`
// checks those before it runs the tier. Without HOSTDEV_K8S_LAB_BIN every test
// is skipped, saying so. HOSTDEV_K8S_LAB_SIM names a hostdev-sim to run beside
// the node; HOSTDEV_K8S_LAB_EXTRA adds component arguments ("COMPONENT=ARG
// ..."), which is how a broken cluster is shown to fail the tests.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"

	"hostdev.local/k8s/lab/cluster"
)

var (
	lab     *cluster.Lab
	cs      *kubernetes.Clientset
	skipWhy string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := os.Getenv("HOSTDEV_K8S_LAB_BIN")
	if bin == "" {
		skipWhy = "HOSTDEV_K8S_LAB_BIN is not set: build the lab with k8s/lab/build.sh (cargo xtask test does)"
		return m.Run()
	}
	extra, err := cluster.ParseExtraArgs(os.Getenv("HOSTDEV_K8S_LAB_EXTRA"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "labtest:", err)
		return 2
	}
	// One fixed directory: a run that was killed before it could stop its
	// lab leaves pids there that the next run stops (the lab is one per host).
	dir := os.Getenv("HOSTDEV_K8S_LAB_TEST_DIR")
	if dir == "" {
		dir = "/tmp/hostdev-k8s-test"
	}
	// A signal (Ctrl-C on go test) stops the lab before the binary exits.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	down := func() {
		once.Do(func() {
			if lab != nil {
				lab.Down()
			}
		})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(os.Stderr, "labtest: %s: stopping the lab\n", s)
		cancel()
		down()
		os.Exit(1)
	}()
	defer signal.Stop(sigs)

	lab, err = cluster.Up(cluster.Options{Dir: dir, Bin: bin, Sim: os.Getenv("HOSTDEV_K8S_LAB_SIM"), ExtraArgs: extra, Ctx: ctx})
	if err != nil {
		fmt.Fprintln(os.Stderr, "labtest: the lab did not start:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "labtest: lab up in %.1fs in %s (snapshotter %s, cgroup %s)\n",
		lab.StartTime.Seconds(), dir, lab.Snapshotter, lab.Cgroups)
	code := 1
	if cs, err = lab.Clientset(); err != nil {
		fmt.Fprintln(os.Stderr, "labtest:", err)
	} else {
		code = m.Run()
	}
	down()
	fmt.Fprintf(os.Stderr, "labtest: logs are in %s (emptied by the next run)\n", filepath.Join(dir, "logs"))
	return code
}

func needLab(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// namespace makes a fresh namespace, with its default service account (the
// controller-manager makes it), and deletes it when the test ends.
func namespace(t *testing.T, prefix string) string {
	t.Helper()
	ctx := ctxFor(t, 2*time.Minute)
	ns := prefix + "-" + rand.String(5)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("cannot create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	eventually(t, "the default service account of "+ns, time.Minute, func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	return ns
}

// eventually polls check until it succeeds or limit passes (then the test
// fails with check's last error). The limit bounds a wait; it asserts no
// speed.
func eventually(t *testing.T, what string, limit time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not there after %s: %v", what, limit, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// podEvents lists a pod's events as "Reason: message" lines.
func podEvents(ctx context.Context, ns, pod string) ([]string, error) {
	evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, e.Reason+": "+e.Message)
	}
	return out, nil
}

// testPod is a host-network pod of the lab's busybox image, never pulled.
func testPod(name string, command string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			HostNetwork:                   true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name:            "main",
				Image:           cluster.TestImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"/bin/sh", "-c", command},
			}},
		},
	}
}

func deletePod(ns, name string) {
	zero := int64(0)
	_ = cs.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

func describe(ctx context.Context, ns, pod string) string {
	p, err := cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	evs, _ := podEvents(ctx, ns, pod)
	var st []string
	for _, c := range p.Status.ContainerStatuses {
		st = append(st, fmt.Sprintf("%s: %+v", c.Name, c.State))
	}
	return fmt.Sprintf("phase %s, node %q, containers [%s], events [%s]; node: %s", p.Status.Phase, p.Spec.NodeName,
		strings.Join(st, "; "), strings.Join(evs, "; "), cluster.NodeState(cs, lab.Dir))
}
