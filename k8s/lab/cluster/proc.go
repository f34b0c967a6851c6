package cluster

// Processes: each component is started with its own process group (a Ctrl-C
// on the terminal reaches the launcher only, which stops the components in
// order), with SIGKILL as its parent-death signal (a launcher killed with -9
// takes them along), and with its pid recorded in run/<name>.pid so that the
// next start on the same directory can stop whatever an unclean exit left.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one running component.
type Proc struct {
	Name string
	Path string
	Args []string
	Env  []string
	Log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Pid is the component's process id (0 when it is not running).
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited reports whether the process has exited, and how.
func (p *Proc) Exited() (bool, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true, nil
	}
	select {
	case <-done:
		return true, p.err
	default:
		return false, nil
	}
}

// spawner runs every fork on one locked OS thread: the kernel sends a child's
// parent-death signal when the thread that forked it exits, and Go may end an
// idle thread, so the forks must come from a thread that lives as long as the
// launcher.
type spawner struct {
	once sync.Once
	reqs chan func()
}

var theSpawner spawner

func (s *spawner) do(f func()) {
	s.once.Do(func() {
		s.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for r := range s.reqs {
				r()
			}
		}()
	})
	done := make(chan struct{})
	s.reqs <- func() { f(); close(done) }
	<-done
}

func (l *Lab) start(p *Proc) error {
	logf, err := os.OpenFile(p.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open the log of %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = l.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	theSpawner.do(func() { err = cmd.Start() })
	if err != nil {
		logf.Close()
		return fmt.Errorf("cannot start %s (%s): %w", p.Name, p.Path, err)
	}
	p.mu.Lock()
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	done := p.done
	p.mu.Unlock()
	go func() {
		werr := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = werr
		p.mu.Unlock()
		close(done)
	}()
	if err := writeFileAtomic(l.pidFile(p.Name), []byte(fmt.Sprintf("%d %s\n", cmd.Process.Pid, p.Path)), 0o644); err != nil {
		return err
	}
	l.logf("started %s (pid %d), log %s", p.Name, cmd.Process.Pid, p.Log)
	return nil
}

// stop sends SIGTERM, waits up to grace, then SIGKILL; it returns once the
// process has been reaped.
func (l *Lab) stop(p *Proc, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	select {
	case <-done:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(grace):
			l.logf("%s (pid %d) did not stop within %s; killing it", p.Name, cmd.Process.Pid, grace)
			_ = cmd.Process.Kill()
			<-done
		}
	}
	_ = os.Remove(l.pidFile(p.Name))
}

// kill9 kills the process at once (the tests' "kubelet crashed").
func (l *Lab) kill9(p *Proc) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

func (l *Lab) pidFile(name string) string { return filepath.Join(l.Dir, "run", name+".pid") }

// exeOf is the path of the executable of a running process ("" when gone).
func exeOf(pid int) string {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(exe, " (deleted)")
}

// killPid kills pid if it still runs want (an executable path) and waits up
// to 10 s for it to be gone.
func killPid(pid int, want func(int) bool) bool {
	if pid <= 1 || !want(pid) {
		return false
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			return true
		}
		// A zombie whose parent is gone is reaped by init; one whose parent
		// is us is reaped by our Wait goroutine.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// readPid reads "PID PATH" from a pid file the lab wrote, or a bare PID
// (containerd's init.pid and shim.pid).
func readPid(path string) (int, string, error) {
	b, err := readSmall(path, 4096)
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, "", fmt.Errorf("the pid file %s is empty", path)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 || pid > 1<<22 {
		return 0, "", fmt.Errorf("the pid file %s does not hold a pid", path)
	}
	exe := ""
	if len(f) > 1 {
		exe = f[1]
	}
	return pid, exe, nil
}
