package cluster

// The components' command lines and configuration files, and how each one's
// readiness is awaited. Every listener is 127.0.0.1 or a unix socket under
// the lab directory; every port is one the kernel just reported free.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func (l *Lab) gates() string { return strings.Join(FeatureGates, ",") }

func (l *Lab) v() string { return "--v=" + strconv.Itoa(l.Verbosity) }

func (l *Lab) newProc(name, bin string, args ...string) *Proc {
	args = append(args, l.ExtraArgs[name]...)
	p := &Proc{Name: name, Path: bin, Args: args, Log: l.Path("logs", name+".log")}
	if old := l.proc(name); old != nil {
		*old = Proc{Name: p.Name, Path: p.Path, Args: p.Args, Log: p.Log}
		return old
	}
	l.procs = append(l.procs, p)
	return p
}

// waitFor polls check until it succeeds, the process exits or the time is up.
func (l *Lab) waitFor(p *Proc, what string, limit time.Duration, check func() error) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		if err := l.Ctx.Err(); err != nil {
			return fmt.Errorf("the lab was stopped while it waited for %s", what)
		}
		if p != nil {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited while the lab waited for %s (%v)", p.Name, what, err)
			}
		}
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not there within %s: %w", what, limit, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// httpsClient trusts the lab's CA and presents the named client certificate.
func (l *Lab) httpsClient(cert string) (*http.Client, error) {
	pool := x509.NewCertPool()
	ca, err := readSmall(l.pki("ca.crt"), 64<<10)
	if err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(ca)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(l.pki(cert+".crt"), l.pki(cert+".key"))
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// startAndProbe starts p, then waits up to limit for url to answer 200 with
// a body containing want, asked over TLS with the lab's client certificate
// cert ("" for none): how each serving component is known to be up.
func (l *Lab) startAndProbe(p *Proc, cert, what string, limit time.Duration, url, want string) error {
	if err := l.start(p); err != nil {
		return err
	}
	c, err := l.httpsClient(cert)
	if err != nil {
		return err
	}
	return l.waitFor(p, what, limit, func() error { return getOK(c, url, want) })
}

func getOK(c *http.Client, url, want string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

func (l *Lab) startSim() error {
	if l.Sim == "" {
		return nil
	}
	p := l.newProc("hostdev-sim", l.Sim, "run", "--root", l.SimRoot(), "--profile", l.SimProfile)
	if err := l.start(p); err != nil {
		return err
	}
	return l.waitFor(p, "hostdev-sim's mount", 20*time.Second, func() error {
		if !fileExists(filepath.Join(l.SimRoot(), "run", "hostdev-sim.pid")) {
			return errors.New("no run/hostdev-sim.pid yet")
		}
		return nil
	})
}

func (l *Lab) startEtcd() error {
	client := fmt.Sprintf("https://127.0.0.1:%d", l.ports["etcd"])
	peer := fmt.Sprintf("https://127.0.0.1:%d", l.ports["etcd-peer"])
	p := l.newProc("etcd", l.bin("etcd"),
		"--name=lab", "--data-dir="+l.Path("etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=lab="+peer, "--initial-cluster-state=new",
		"--cert-file="+l.pki("etcd.crt"), "--key-file="+l.pki("etcd.key"),
		"--client-cert-auth", "--trusted-ca-file="+l.pki("ca.crt"),
		"--peer-cert-file="+l.pki("etcd.crt"), "--peer-key-file="+l.pki("etcd.key"),
		"--peer-client-cert-auth", "--peer-trusted-ca-file="+l.pki("ca.crt"),
		// A scratch lab: no fsync (the store is thrown away with the lab).
		"--unsafe-no-fsync", "--log-level=warn")
	return l.startAndProbe(p, "apiserver-etcd-client", "etcd's health", 60*time.Second, client+"/health", `"health":"true"`)
}

func (l *Lab) startAPIServer() error {
	p := l.newProc("kube-apiserver", l.bin("kube-apiserver"),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", l.ports["apiserver"]),
		"--advertise-address=127.0.0.1",
		// Endpoints may not name a loopback address: no reconciler for the
		// kubernetes Service (in-cluster clients use host networking here).
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--etcd-servers=https://127.0.0.1:%d", l.ports["etcd"]),
		"--etcd-cafile="+l.pki("ca.crt"), "--etcd-certfile="+l.pki("apiserver-etcd-client.crt"),
		"--etcd-keyfile="+l.pki("apiserver-etcd-client.key"),
		"--tls-cert-file="+l.pki("apiserver.crt"), "--tls-private-key-file="+l.pki("apiserver.key"),
		"--client-ca-file="+l.pki("ca.crt"),
		"--kubelet-client-certificate="+l.pki("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+l.pki("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority="+l.pki("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+l.pki("sa.pub"),
		"--service-account-signing-key-file="+l.pki("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
		"--feature-gates="+l.gates(),
		l.v())
	return l.startAndProbe(p, "admin", "the apiserver's /readyz", 120*time.Second, l.APIServerURL()+"/readyz", "ok")
}

func (l *Lab) startControllerManager() error {
	kc := l.Path("controller-manager.kubeconfig")
	p := l.newProc("kube-controller-manager", l.bin("kube-controller-manager"),
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", l.ports["controller-manager"]),
		"--tls-cert-file="+l.pki("controller-manager-serving.crt"),
		"--tls-private-key-file="+l.pki("controller-manager-serving.key"),
		"--client-ca-file="+l.pki("ca.crt"),
		"--service-account-private-key-file="+l.pki("sa.key"),
		"--root-ca-file="+l.pki("ca.crt"),
		"--cluster-signing-cert-file="+l.pki("ca.crt"), "--cluster-signing-key-file="+l.pki("ca.key"),
		"--use-service-account-credentials=true",
		// Every default controller (the resourceclaim controller among them).
		"--controllers=*",
		"--leader-elect=false",
		"--feature-gates="+l.gates(),
		l.v())
	return l.startAndProbe(p, "", "the controller-manager's /healthz", 60*time.Second, fmt.Sprintf("https://127.0.0.1:%d/healthz", l.ports["controller-manager"]), "ok")
}

func (l *Lab) startScheduler() error {
	cfg := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
leaderElection:
  leaderElect: false
`, l.Path("scheduler.kubeconfig"))
	if err := writeFileAtomic(l.Path("scheduler", "config.yaml"), []byte(cfg), 0o644); err != nil {
		return err
	}
	kc := l.Path("scheduler.kubeconfig")
	p := l.newProc("kube-scheduler", l.bin("kube-scheduler"),
		"--config="+l.Path("scheduler", "config.yaml"),
		"--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", l.ports["scheduler"]),
		"--tls-cert-file="+l.pki("scheduler-serving.crt"), "--tls-private-key-file="+l.pki("scheduler-serving.key"),
		"--client-ca-file="+l.pki("ca.crt"),
		"--feature-gates="+l.gates(),
		l.v())
	return l.startAndProbe(p, "", "the scheduler's /healthz", 60*time.Second, fmt.Sprintf("https://127.0.0.1:%d/healthz", l.ports["scheduler"]), "ok")
}

// cniConf makes the runtime's network ready without touching the host's
// network: pods run with hostNetwork, and a pod without it gets its own
// network namespace with only its loopback (containerd sets lo up itself;
// Debian's loopback plugin is the whole chain).
const cniConf = `{"cniVersion": "1.0.0", "name": "hostdev-lab-loopback", "plugins": [{"type": "loopback"}]}
`

func (l *Lab) containerdConfig() string {
	q := strconv.Quote
	return fmt.Sprintf(`version = 3
root = %s
state = %s
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %s

[ttrpc]
  address = %s

[plugins.'io.containerd.internal.v1.opt']
  path = %s

[plugins.'io.containerd.cri.v1.images']
  snapshotter = %s
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %s

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = %t
  cdi_spec_dirs = [%s]
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      snapshotter = %s
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %s
        Root = %s
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%s]
    conf_dir = %s
    use_internal_loopback = true

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, q(l.Path("containerd", "root")), q(l.Path("containerd", "state")),
		q(l.ContainerdSocket()), q(l.ContainerdSocket()+".ttrpc"),
		q(l.Path("containerd", "opt")), q(l.Snapshotter), q(PauseImage),
		!l.hasCapSysResource, q(l.CDIDir()), q(l.Snapshotter), q(l.bin("runc")), q(l.Path("containerd", "runc")),
		q(l.CNIBinDir), q(l.Path("cni")))
}

// capSysResource is CAP_SYS_RESOURCE's bit in /proc/self/status's CapEff.
const capSysResource = 24

// hasCap reads whether this process holds a capability (a container may lack
// CAP_SYS_RESOURCE, which lowering a process's oom_score_adj needs).
func hasCap(bit uint) bool {
	b, err := readSmall("/proc/self/status", 64<<10)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<bit) != 0
		}
	}
	return false
}

func (l *Lab) startContainerd() error {
	// Without CAP_SYS_RESOURCE no container may get an oom_score_adj below
	// containerd's own (the pod sandbox asks for -998): containerd then
	// raises such requests to its own score instead of failing the pod.
	l.hasCapSysResource = hasCap(capSysResource)
	if !l.hasCapSysResource {
		l.logf("no CAP_SYS_RESOURCE here: containerd restricts oom_score_adj to its own")
	}
	if err := writeFileAtomic(l.Path("cni", "10-hostdev-lab.conflist"), []byte(cniConf), 0o644); err != nil {
		return err
	}
	if err := writeFileAtomic(l.Path("containerd", "config.toml"), []byte(l.containerdConfig()), 0o644); err != nil {
		return err
	}
	p := l.newProc("containerd", l.bin("containerd"), "--config", l.Path("containerd", "config.toml"), "--log-level=info")
	// containerd finds its shim on PATH; the shim finds runc by BinaryName.
	p.Env = []string{"PATH=" + l.Bin + ":" + os.Getenv("PATH")}
	if err := l.start(p); err != nil {
		return err
	}
	if err := l.waitFor(p, "containerd's socket", 60*time.Second, func() error {
		out, err := exec.Command(l.bin("ctr"), "--address", l.ContainerdSocket(), "version").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr version: %v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}); err != nil {
		return err
	}
	return l.importImages(l.Path("images", "lab-images.oci.tar"))
}

func (l *Lab) kubeletConfig() ([]byte, error) {
	gates := map[string]bool{}
	for _, g := range FeatureGates {
		name, val, _ := strings.Cut(g, "=")
		gates[name] = val == "true"
	}
	cfg := map[string]any{
		"kind":                     "KubeletConfiguration",
		"apiVersion":               "kubelet.config.k8s.io/v1beta1",
		"address":                  "127.0.0.1",
		"port":                     l.ports["kubelet"],
		"readOnlyPort":             0,
		"healthzBindAddress":       "127.0.0.1",
		"healthzPort":              l.ports["kubelet-healthz"],
		"tlsCertFile":              l.pki("kubelet.crt"),
		"tlsPrivateKeyFile":        l.pki("kubelet.key"),
		"rotateCertificates":       false,
		"serverTLSBootstrap":       false,
		"authentication":           map[string]any{"anonymous": map[string]any{"enabled": false}, "webhook": map[string]any{"enabled": true}, "x509": map[string]any{"clientCAFile": l.pki("ca.crt")}},
		"authorization":            map[string]any{"mode": "Webhook"},
		"containerRuntimeEndpoint": "unix://" + l.ContainerdSocket(),
		"cgroupDriver":             "cgroupfs",
		"failCgroupV1":             false,
		"failSwapOn":               false,
		"podLogsDir":               l.Path("pod-logs"),
		"volumePluginDir":          l.Path("kubelet-volume-plugins"),
		"staticPodPath":            "",
		"maxPods":                  32,
		"resolvConf":               "/etc/resolv.conf",
		"featureGates":             gates,
		// A shared machine's disk and memory are not the lab's to police: no
		// eviction threshold at all ("0%" is the kubelet's "ignore"), so the
		// node never takes a pressure taint and never deletes the lab's
		// images to reclaim space (a CI machine's disk filled by the build
		// once did both, and every pod stayed Pending). Image GC is off too.
		"evictionHard":                map[string]string{"memory.available": "0%", "nodefs.available": "0%", "nodefs.inodesFree": "0%", "imagefs.available": "0%", "imagefs.inodesFree": "0%"},
		"imageGCHighThresholdPercent": 100,
		"imageGCLowThresholdPercent":  99,
		"shutdownGracePeriod":         "0s",
		"nodeStatusUpdateFrequency":   "10s",
		"nodeLeaseDurationSeconds":    40,
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// StartKubelet (re)starts the kubelet and waits for the node to be Ready
// with a heartbeat from this kubelet.
func (l *Lab) StartKubelet() error {
	cfg, err := l.kubeletConfig()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.Path("kubelet-config.json"), cfg, 0o644); err != nil {
		return err
	}
	p := l.newProc("kubelet", l.bin("kubelet"),
		"--config="+l.Path("kubelet-config.json"),
		"--kubeconfig="+l.Path("kubelet.kubeconfig"),
		"--root-dir="+l.KubeletRootDir(),
		"--hostname-override="+NodeName,
		l.v())
	started := time.Now()
	if err := l.start(p); err != nil {
		return err
	}
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	return l.waitFor(p, "node "+NodeName+" Ready", 120*time.Second, func() error {
		return NodeReadySince(cs, started)
	})
}

// KubeletConfigz reads the running kubelet's /configz, as the apiserver's
// kubelet client (the apiserver's own node proxy refuses a loopback node).
func (l *Lab) KubeletConfigz() ([]byte, error) {
	c, err := l.httpsClient("apiserver-kubelet-client")
	if err != nil {
		return nil, err
	}
	resp, err := c.Get(fmt.Sprintf("https://127.0.0.1:%d/configz", l.ports["kubelet"]))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the kubelet's /configz answered %s: %.200s", resp.Status, body)
	}
	return body, nil
}

// KillKubelet kills the kubelet with SIGKILL, as a crash would.
func (l *Lab) KillKubelet() (int, error) {
	p := l.proc("kubelet")
	if p == nil || p.Pid() == 0 {
		return 0, errors.New("the lab has no kubelet running")
	}
	pid := p.Pid()
	l.kill9(p)
	l.logf("killed the kubelet (pid %d)", pid)
	return pid, nil
}

// KubeletPid is the running kubelet's pid (0 if none).
func (l *Lab) KubeletPid() int {
	if p := l.proc("kubelet"); p != nil {
		if exited, _ := p.Exited(); !exited {
			return p.Pid()
		}
	}
	return 0
}

// Clientset is an administrator's client of the lab.
func (l *Lab) Clientset() (*kubernetes.Clientset, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig())
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// NodeState says what the scheduler and the kubelet see of the node: its
// taints, cordon, the conditions that are not as they should be, and the free
// space of the filesystem under dir. A pod left Pending is explained with it.
func NodeState(cs kubernetes.Interface, dir string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var parts []string
	node, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		parts = append(parts, "node unreadable: "+err.Error())
	} else {
		if node.Spec.Unschedulable {
			parts = append(parts, "cordoned")
		}
		for _, tn := range node.Spec.Taints {
			parts = append(parts, fmt.Sprintf("taint %s:%s", tn.Key, tn.Effect))
		}
		for _, c := range node.Status.Conditions {
			bad := c.Status != corev1.ConditionFalse
			if c.Type == corev1.NodeReady {
				bad = c.Status != corev1.ConditionTrue
			}
			if bad {
				parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
			}
		}
	}
	parts = append(parts, DiskFree(dir))
	return strings.Join(parts, ", ")
}

// DiskFree says how much of the filesystem under dir is free.
func DiskFree(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Sprintf("free space of %s unknown: %v", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	total := st.Blocks * uint64(st.Bsize)
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(free) / float64(total)
	}
	return fmt.Sprintf("%.1f GiB free of %.1f GiB (%.0f%%) under %s", float64(free)/(1<<30), float64(total)/(1<<30), pct, dir)
}

// NodeReadySince succeeds once the node's Ready condition is True and its
// lease was renewed at or after since (by a kubelet started then).
func NodeReadySince(cs kubernetes.Interface, since time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	node, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status != corev1.ConditionTrue {
				return fmt.Errorf("node %s is not Ready: %s: %s", NodeName, c.Reason, c.Message)
			}
			// metav1.Time has whole seconds.
			if c.LastHeartbeatTime.Time.Before(since.Truncate(time.Second)) {
				return fmt.Errorf("node %s's Ready heartbeat (%s) predates %s", NodeName,
					c.LastHeartbeatTime.Format(time.RFC3339), since.Format(time.RFC3339))
			}
			ready = true
		}
	}
	if !ready {
		return fmt.Errorf("node %s has no Ready condition yet", NodeName)
	}
	lease, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if lease.Spec.RenewTime == nil || lease.Spec.RenewTime.Time.Before(since) {
		return fmt.Errorf("node %s's lease was not renewed since %s", NodeName, since.Format(time.RFC3339Nano))
	}
	return nil
}
