// Package cluster starts and stops hostdev's one-node Kubernetes lab: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd (with
// runc and CDI) and a kubelet registered as node NodeName, all from binaries
// built by build.sh, all bound to 127.0.0.1 or to unix sockets in the lab
// directory, beside an optional hostdev-sim mount (the node's devices).
//
// It owns the lab directory (certificates, kubeconfigs, configs, state, logs)
// and every process it starts; it stops them by pid on every exit it sees
// (Up's failure, Down, the launcher's signals) and, on the next Up, whatever
// a kill -9 left. It must not touch anything outside the lab directory but
// what the components insist on and cannot be told otherwise: the kubelet's
// cgroups (/kubepods), its device-plugin socket in
// /var/lib/kubelet/device-plugins and its links in /var/log/containers, the
// shims' sockets under /run/containerd/s, and the host lock
// /run/lock/hostdev-k8s-lab.lock that makes it one lab per host.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NodeName is the lab node's name. The kubelet refuses a loopback node IP
// unless it is also the node's name, and the lab has no other address.
const NodeName = "127.0.0.1"

// serviceIP is the first address of the (purely virtual) service range.
const serviceIP = "10.96.0.1"

const marker = ".hostdev-k8s-lab"

// FeatureGates are set on every component. DRADeviceCompatibilityGroups is
// alpha in 1.37; the others are beta or GA there and on by default, named so
// that a default that changes does not change the lab.
var FeatureGates = []string{
	"DRAPartitionableDevices=true",
	"DRADeviceCompatibilityGroups=true",
	"DRADeviceBindingConditions=true",
	"DRADeviceTaints=true",
	"ResourceHealthStatus=true",
	"ResourceHealthStatusMessage=true",
}

// Options say where the lab lives and what it runs.
type Options struct {
	Dir        string    // the lab directory; emptied first (only a former lab's or an empty one)
	Bin        string    // directory of the binaries build.sh built
	Sim        string    // hostdev-sim binary; empty: no simulator
	SimProfile string    // the simulator's profile (default "demo")
	Busybox    string    // static busybox for the images (default /bin/busybox)
	CNIBinDir  string    // CNI plugins (default /usr/lib/cni, Debian's containernetworking-plugins)
	Log        io.Writer // progress lines (default os.Stderr)
	Verbosity  int       // the components' -v (default 2)
	// ExtraArgs are appended to a component's command line, by its name
	// (kube-apiserver, kubelet, ...): a later flag overrides an earlier one.
	ExtraArgs map[string][]string
	// Ctx, once cancelled (a signal), ends Up's waiting: Up then stops what
	// it started and fails.
	Ctx context.Context
}

// Lab is a running (or stopped) lab.
type Lab struct {
	Options
	Dir         string
	Snapshotter string // overlayfs, or native where overlayfs cannot be mounted
	Cgroups     string // "v1" or "v2"
	StartTime   time.Duration

	hasCapSysResource bool
	hostLock          *os.File

	ports map[string]int
	procs []*Proc // in start order
}

func (l *Lab) logf(format string, args ...any) {
	fmt.Fprintf(l.Log, "k8s-lab: "+format+"\n", args...)
}

func (l *Lab) bin(name string) string { return filepath.Join(l.Bin, name) }

// Path joins names under the lab directory.
func (l *Lab) Path(names ...string) string {
	return filepath.Join(append([]string{l.Dir}, names...)...)
}

// Kubeconfig is the administrator's kubeconfig (group system:masters).
func (l *Lab) Kubeconfig() string { return l.Path("admin.kubeconfig") }

// APIServerURL is where the apiserver serves.
func (l *Lab) APIServerURL() string { return fmt.Sprintf("https://127.0.0.1:%d", l.ports["apiserver"]) }

// ContainerdSocket is containerd's gRPC socket.
func (l *Lab) ContainerdSocket() string { return l.Path("run", "containerd.sock") }

// SimRoot is the hostdev-sim root (HOSTDEV_ROOT), empty without a simulator.
func (l *Lab) SimRoot() string {
	if l.Sim == "" {
		return ""
	}
	return l.Path("sim")
}

// KubeletRootDir is the kubelet's --root-dir (plugins_registry/ and plugins/ are in it).
func (l *Lab) KubeletRootDir() string { return l.Path("kubelet") }

// CDIDir is the directory containerd reads CDI specs from.
func (l *Lab) CDIDir() string { return l.Path("cdi") }

// Env is what a client of the lab needs, as NAME=VALUE lines.
func (l *Lab) Env() []string {
	env := []string{
		"KUBECONFIG=" + l.Kubeconfig(),
		"HOSTDEV_K8S_LAB_DIR=" + l.Dir,
		"HOSTDEV_K8S_LAB_BIN=" + l.Bin,
		"HOSTDEV_K8S_NODE=" + NodeName,
		"HOSTDEV_K8S_KUBELET_DIR=" + l.KubeletRootDir(),
		"HOSTDEV_K8S_CDI_DIR=" + l.CDIDir(),
		"CONTAINERD_ADDRESS=" + l.ContainerdSocket(),
		"CONTAINERD_NAMESPACE=k8s.io",
	}
	if r := l.SimRoot(); r != "" {
		env = append(env, "HOSTDEV_ROOT="+r)
	}
	return env
}

func (o *Options) defaults() error {
	if o.Dir == "" || !filepath.IsAbs(o.Dir) {
		return fmt.Errorf("the lab directory must be an absolute path (got %q)", o.Dir)
	}
	if filepath.Clean(o.Dir) == "/" || strings.ContainsAny(o.Dir, " \t\n\"'\\") {
		return fmt.Errorf("the lab directory %q is not usable (it must be a plain path below /)", o.Dir)
	}
	// Unix sockets the kubelet and drivers use under the directory have a
	// 108-byte limit (kubelet/plugins_registry/<driver>-reg.sock).
	if len(o.Dir) > 48 {
		return fmt.Errorf("the lab directory %q is longer than 48 bytes; unix socket paths under it would not fit", o.Dir)
	}
	if o.Bin == "" {
		return errors.New("no binary directory given (build.sh prints it)")
	}
	// The components run in the lab directory: relative paths would move.
	for _, p := range []*string{&o.Bin, &o.Sim, &o.Busybox, &o.CNIBinDir} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	if o.SimProfile == "" {
		o.SimProfile = "demo"
	}
	if o.Busybox == "" {
		o.Busybox = "/bin/busybox"
	}
	if o.CNIBinDir == "" {
		o.CNIBinDir = "/usr/lib/cni"
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Verbosity == 0 {
		o.Verbosity = 2
	}
	if o.Ctx == nil {
		o.Ctx = context.Background()
	}
	return nil
}

// preflight checks what the lab needs from the machine, naming what is missing.
func (l *Lab) preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab runs as root (the kubelet, containerd and runc manage cgroups and mounts)")
	}
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
		"kubectl", "containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		if st, err := os.Stat(l.bin(b)); err != nil || st.Mode()&0o111 == 0 {
			missing = append(missing, l.bin(b))
		}
	}
	if _, err := os.Stat(filepath.Join(l.CNIBinDir, "loopback")); err != nil {
		missing = append(missing, filepath.Join(l.CNIBinDir, "loopback")+" (Debian's containernetworking-plugins)")
	}
	if l.Sim != "" {
		if _, err := os.Stat("/dev/fuse"); err != nil {
			missing = append(missing, "/dev/fuse (hostdev-sim mounts with FUSE)")
		}
		if _, err := os.Stat(l.Sim); err != nil {
			missing = append(missing, l.Sim)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the lab cannot start: missing %s", strings.Join(missing, ", "))
	}
	switch {
	case fileExists("/sys/fs/cgroup/cgroup.controllers"):
		l.Cgroups = "v2"
	case fileExists("/sys/fs/cgroup/cpu/cgroup.procs") && fileExists("/sys/fs/cgroup/memory/cgroup.procs"):
		l.Cgroups = "v1"
	default:
		return errors.New("no cgroup hierarchy is mounted at /sys/fs/cgroup (neither v2 nor v1 cpu and memory)")
	}
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// prepareDir stops what a former lab in the directory left running, unmounts
// what it left mounted, and empties it. A non-empty directory that was never
// a lab is refused.
func (l *Lab) prepareDir() error {
	entries, err := os.ReadDir(l.Dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("cannot read the lab directory %s: %w", l.Dir, err)
	case len(entries) > 0 && !fileExists(l.Path(marker)):
		return fmt.Errorf("%s is not empty and is not a lab directory (no %s); refusing to empty it", l.Dir, marker)
	case len(entries) > 0:
		l.reapStale()
		l.removeLogLinks()
		if left := unmountAll(l.Dir); len(left) > 0 {
			return fmt.Errorf("cannot unmount what a former lab left in %s: %s", l.Dir, strings.Join(left, ", "))
		}
		for _, e := range entries {
			if err := os.RemoveAll(l.Path(e.Name())); err != nil {
				return fmt.Errorf("cannot empty the lab directory %s: %w", l.Dir, err)
			}
		}
	}
	for _, d := range []string{"", "pki", "run", "logs", "etcd", "containerd", "kubelet", "cni", "cdi", "images", "pod-logs", "kcm", "scheduler"} {
		if err := os.MkdirAll(l.Path(d), 0o755); err != nil {
			return fmt.Errorf("cannot create %s: %w", l.Path(d), err)
		}
	}
	if err := os.Chmod(l.Path("pki"), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(l.Path(marker), []byte("hostdev's Kubernetes lab (k8s/lab); emptied by the next start\n"), 0o644)
}

// reapStale kills, by the pids recorded in the directory, what a former lab
// left running: its components (only while the pid still runs the recorded
// executable), then its containers (only while the pid is still in the
// container's cgroup) and their shims.
func (l *Lab) reapStale() {
	pidFiles, _ := filepath.Glob(l.Path("run", "*.pid"))
	// The kubelet first, so that it restarts nothing.
	sort.SliceStable(pidFiles, func(i, j int) bool { return strings.HasSuffix(pidFiles[i], "/kubelet.pid") })
	for _, pf := range pidFiles {
		pid, exe, err := readPid(pf)
		if err != nil || exe == "" {
			continue
		}
		if killPid(pid, func(p int) bool { return exeOf(p) == exe }) {
			l.logf("stopped pid %d (%s) left by a former lab", pid, filepath.Base(exe))
		}
		os.Remove(pf)
	}
	l.reapContainers()
}

// reapContainers kills every container recorded in containerd's state
// directory, then the shims that served them.
func (l *Lab) reapContainers() {
	tasks, _ := filepath.Glob(l.Path("containerd", "state", "io.containerd.runtime.v2.task", "*", "*"))
	for _, t := range tasks {
		id := filepath.Base(t)
		if pid, _, err := readPid(filepath.Join(t, "init.pid")); err == nil {
			if killPid(pid, func(p int) bool { return inCgroupOf(p, id) }) {
				l.logf("stopped container %.12s (pid %d)", id, pid)
			}
		}
	}
	// containerd 2 keeps no pid file for a shim: a shim of this lab is a
	// containerd-shim-runc-v2 whose command line names this lab's socket.
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range procs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if killPid(pid, l.isOurShim) {
			l.logf("stopped containerd-shim-runc-v2 (pid %d)", pid)
		}
	}
}

func (l *Lab) isOurShim(pid int) bool {
	if filepath.Base(exeOf(pid)) != "containerd-shim-runc-v2" {
		return false
	}
	cmdline, err := readSmall(fmt.Sprintf("/proc/%d/cmdline", pid), 64<<10)
	return err == nil && bytes.Contains(cmdline, []byte("\x00-address\x00"+l.ContainerdSocket()+"\x00"))
}

// inCgroupOf tells whether pid's cgroup path names the container id.
func inCgroupOf(pid int, id string) bool {
	if len(id) < 12 {
		return false
	}
	b, err := readSmall(fmt.Sprintf("/proc/%d/cgroup", pid), 64<<10)
	return err == nil && strings.Contains(string(b), id)
}

// ParseExtraArgs reads "COMPONENT=ARG ..." (whitespace-separated), as
// k8slab's --extra and the tests' HOSTDEV_K8S_LAB_EXTRA give them.
func ParseExtraArgs(s string) (map[string][]string, error) {
	known := map[string]bool{"etcd": true, "kube-apiserver": true, "kube-controller-manager": true,
		"kube-scheduler": true, "containerd": true, "kubelet": true}
	out := map[string][]string{}
	for _, f := range strings.Fields(s) {
		name, arg, ok := strings.Cut(f, "=")
		if !ok || !known[name] || arg == "" {
			return nil, fmt.Errorf("extra argument %q is not COMPONENT=ARG with COMPONENT one of etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet", f)
		}
		out[name] = append(out[name], arg)
	}
	return out, nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Up starts a lab. On failure everything it started is stopped again and the
// error names the component, with the tail of its log.
func Up(opts Options) (*Lab, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	l := &Lab{Options: opts, Dir: filepath.Clean(opts.Dir), ports: map[string]int{}}
	t0 := time.Now()
	if err := l.up(); err != nil {
		l.Down()
		return nil, err
	}
	l.StartTime = time.Since(t0)
	if err := writeFileAtomic(l.Path("env"), []byte(strings.Join(l.Env(), "\n")+"\n"), 0o644); err != nil {
		l.Down()
		return nil, err
	}
	l.logf("up in %.1fs: node %s Ready; snapshotter %s, cgroup %s; %s", l.StartTime.Seconds(), NodeName, l.Snapshotter, l.Cgroups, DiskFree(l.Dir))
	return l, nil
}

// hostLockPath is held (flock) by the one lab a host can run: two kubelets
// would share the /kubepods cgroups and /var/log/containers.
const hostLockPath = "/run/lock/hostdev-k8s-lab.lock"

func (l *Lab) lockHost() error {
	if err := os.MkdirAll(filepath.Dir(hostLockPath), 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", filepath.Dir(hostLockPath), err)
	}
	f, err := os.OpenFile(hostLockPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open the lab's host lock %s: %w", hostLockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := readSmall(hostLockPath, 4096)
		f.Close()
		return fmt.Errorf("another Kubernetes lab runs on this host (%s holds %s); one lab per host: two kubelets would share the pod cgroups",
			strings.TrimSpace(string(holder)), hostLockPath)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d, directory %s\n", os.Getpid(), l.Dir)), 0)
	}
	l.hostLock = f
	return nil
}

func (l *Lab) up() error {
	if err := l.preflight(); err != nil {
		return err
	}
	if err := l.lockHost(); err != nil {
		return err
	}
	if err := l.prepareDir(); err != nil {
		return err
	}
	for _, name := range []string{"etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kubelet", "kubelet-healthz"} {
		p, err := freePort()
		if err != nil {
			return err
		}
		l.ports[name] = p
	}
	if err := l.makePKI(); err != nil {
		return err
	}
	for _, k := range []struct{ file, user, cert string }{
		{"admin.kubeconfig", "hostdev-lab-admin", "admin"},
		{"controller-manager.kubeconfig", "system:kube-controller-manager", "controller-manager"},
		{"scheduler.kubeconfig", "system:kube-scheduler", "scheduler"},
		{"kubelet.kubeconfig", "system:node:" + NodeName, "kubelet-client"},
	} {
		if err := l.writeKubeconfig(l.Path(k.file), k.user, k.cert); err != nil {
			return err
		}
	}
	if err := BuildImages(l.Busybox, l.Path("images", "lab-images.oci.tar")); err != nil {
		return fmt.Errorf("cannot build the lab's images: %w", err)
	}
	l.Snapshotter = l.probeSnapshotter()
	steps := []struct {
		name string
		run  func() error
	}{
		{"hostdev-sim", l.startSim},
		{"etcd", l.startEtcd},
		{"kube-apiserver", l.startAPIServer},
		{"kube-controller-manager", l.startControllerManager},
		{"kube-scheduler", l.startScheduler},
		{"containerd", l.startContainerd},
		{"kubelet", l.StartKubelet},
	}
	for _, s := range steps {
		if err := l.Ctx.Err(); err != nil {
			return errors.New("the lab was stopped while it started")
		}
		if err := s.run(); err != nil {
			return l.withLog(s.name, err)
		}
	}
	return nil
}

// withLog adds the last lines of a component's log to its error.
func (l *Lab) withLog(name string, err error) error {
	p := l.proc(name)
	if p == nil || l.Ctx.Err() != nil {
		return err
	}
	b, rerr := os.ReadFile(p.Log)
	if rerr != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return fmt.Errorf("%w\nlast lines of %s:\n  %s", err, p.Log, strings.Join(lines, "\n  "))
}

func (l *Lab) proc(name string) *Proc {
	for _, p := range l.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// probeSnapshotter mounts a throwaway overlay under the containerd directory:
// overlayfs where that works, native (plain copies) where it does not (an
// overlay or 9p upper directory, as in the kernel lab's guest).
func (l *Lab) probeSnapshotter() string {
	base := l.Path("containerd", "probe")
	defer os.RemoveAll(base)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return "native"
		}
	}
	opts := fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", base, base, base)
	if err := syscall.Mount("overlay", filepath.Join(base, "merged"), "overlay", 0, opts); err != nil {
		l.logf("overlayfs cannot be mounted under %s (%v); containerd uses the native snapshotter", l.Dir, err)
		return "native"
	}
	_ = syscall.Unmount(filepath.Join(base, "merged"), syscall.MNT_DETACH)
	return "overlayfs"
}

// Down stops every component by pid (the kubelet first, then the
// containers and their shims, containerd, the control plane, etcd and the
// simulator), unmounts what is left under the lab directory and removes the
// kubelet's empty cgroups. The directory itself (logs) stays.
func (l *Lab) Down() {
	order := []string{"kubelet"}
	for i := len(l.procs) - 1; i >= 0; i-- {
		if n := l.procs[i].Name; n != "kubelet" {
			order = append(order, n)
		}
	}
	for _, n := range order {
		p := l.proc(n)
		if p == nil {
			continue
		}
		if n == "containerd" {
			l.reapContainers()
		}
		l.stop(p, 15*time.Second)
	}
	l.reapContainers()
	if left := unmountAll(l.Dir); len(left) > 0 {
		l.logf("could not unmount: %s", strings.Join(left, ", "))
	}
	if l.hostLock != nil {
		// Host-wide leftovers are this lab's only while it holds the lock.
		l.removeCgroups()
		l.removeLogLinks()
		l.hostLock.Close() // releases the flock
		l.hostLock = nil
	}
	l.logf("stopped; logs are in %s", l.Path("logs"))
}

// removeLogLinks removes the links the kubelet keeps in /var/log/containers
// (a path it does not let one configure) that point into this lab.
func (l *Lab) removeLogLinks() {
	const dir = "/var/log/containers"
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, l.Dir+"/") {
			_ = os.Remove(p)
		}
	}
}

// removeCgroups removes the kubelet's pod cgroups, deepest first, where they
// are empty (rmdir refuses the others).
func (l *Lab) removeCgroups() {
	var roots []string
	if l.Cgroups == "v2" {
		roots = []string{"/sys/fs/cgroup/kubepods"}
	} else {
		roots, _ = filepath.Glob("/sys/fs/cgroup/*/kubepods")
	}
	for _, r := range roots {
		var dirs []string
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = syscall.Rmdir(dirs[i])
		}
	}
}
