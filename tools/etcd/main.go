// Command etcd runs go.etcd.io/etcd/server/v3's etcdmain with the process arguments, like the
// upstream etcd binary (whose root module cannot be built from the module proxy).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
