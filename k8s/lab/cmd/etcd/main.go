// Command etcd is the real etcd server: etcd's own main (etcdmain), built
// here so that the lab's etcd comes from go.etcd.io/etcd/server/v3 at the
// version this module pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
