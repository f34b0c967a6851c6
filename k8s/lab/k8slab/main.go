// Command k8slab starts hostdev's one-node Kubernetes lab (package cluster)
// and keeps it up until SIGINT, SIGTERM or SIGHUP, or until the command given
// with --then exits; then it stops every process it started, by pid.
//
//	k8slab --bin DIR [--dir /tmp/hostdev-k8s-lab] [--sim PATH [--profile demo]] [--then CMD]
//
// The lab's environment (KUBECONFIG=..., HOSTDEV_ROOT=...) is printed on
// stdout once the node is Ready, and written to DIR/env.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"hostdev.local/k8s/lab/cluster"
)

func main() {
	os.Exit(run())
}

func run() int {
	var opts cluster.Options
	var then, extra string
	flag.StringVar(&opts.Dir, "dir", "/tmp/hostdev-k8s-lab", "the lab directory (emptied first; only a former lab's or an empty one)")
	flag.StringVar(&opts.Bin, "bin", "", "the directory of the binaries build.sh built")
	flag.StringVar(&opts.Sim, "sim", "", "hostdev-sim to run beside the node (its root is exported as HOSTDEV_ROOT)")
	flag.StringVar(&opts.SimProfile, "profile", "demo", "the simulator's profile")
	flag.StringVar(&opts.Busybox, "busybox", "/bin/busybox", "Debian's static busybox, for the pause and test images")
	flag.IntVar(&opts.Verbosity, "v", 2, "the components' log verbosity")
	flag.StringVar(&extra, "extra", "", "more arguments for components, as 'COMPONENT=ARG ...' (e.g. kube-apiserver=--v=4)")
	flag.StringVar(&then, "then", "", "run this shell command with the lab's environment, then stop the lab and exit with its status")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: k8slab --bin DIR [options]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "k8slab: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		return 2
	}

	var err error
	if opts.ExtraArgs, err = cluster.ParseExtraArgs(extra); err != nil {
		fmt.Fprintf(os.Stderr, "k8slab: %v\n", err)
		return 2
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "k8s-lab: %s: stopping\n", s)
		cancel()
	}()
	opts.Ctx = ctx

	lab, err := cluster.Up(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "k8s-lab: %v\n", err)
		return 1
	}
	defer lab.Down()
	fmt.Printf("# hostdev Kubernetes lab: up in %.1fs (also in %s)\n", lab.StartTime.Seconds(), lab.Path("env"))
	for _, e := range lab.Env() {
		fmt.Println("export " + e)
	}
	fmt.Printf("# kubectl: %s/kubectl get nodes\n", lab.Bin)

	if then == "" {
		fmt.Fprintln(os.Stderr, "k8s-lab: running; Ctrl-C stops it")
		<-ctx.Done()
		return 0
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", then)
	cmd.Env = append(os.Environ(), lab.Env()...)
	cmd.Env = append(cmd.Env, "PATH="+lab.Bin+":"+os.Getenv("PATH"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "k8s-lab: %s: %v\n", strings.TrimSpace(then), err)
		return 1
	}
}
