// Command driverimage writes the DRA driver's container image as an OCI
// archive, from a hostdev-dra binary built on this machine: the binary and
// the shared libraries it loads, nothing else (package cluster,
// BuildDriverImage). Import it on each node with containerd's
// `ctr -n k8s.io images import FILE`.
//
//	go run ./driverimage --bin ../../target/release/hostdev-dra --out hostdev-dra.oci.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"hostdev.local/k8s/lab/cluster"
)

func main() {
	bin := flag.String("bin", "", "the hostdev-dra binary (cargo build --release -p hostdev-dra)")
	name := flag.String("name", "hostdev.local/hostdev-dra:0.1.0", "the image's name, as deploy/kubernetes/daemonset.yaml names it")
	out := flag.String("out", "hostdev-dra.oci.tar", "the OCI archive to write")
	flag.Parse()
	if *bin == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: driverimage --bin PATH [--name IMAGE:TAG] [--out FILE]")
		os.Exit(2)
	}
	if err := cluster.BuildDriverImage(*bin, *name, *out); err != nil {
		fmt.Fprintln(os.Stderr, "driverimage:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %s\n", *out, *name)
}
