// The pause container of the node suite's pods: holds the pod's namespaces,
// reaps orphaned children (it is the pod's PID 1 when the PID namespace is
// shared) and exits 0 on SIGINT or SIGTERM, as registry.k8s.io/pause does.
// Built static (CGO_ENABLED=0) by scripts/build-node.sh and packed into an OCI
// image by scripts/build-image --pause: nothing is pulled from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
