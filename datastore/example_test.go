package datastore_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/netkit/libnetwork/datastore"
)

func Example() {
	dir, _ := os.MkdirTemp("", "datastore-example-")
	defer os.RemoveAll(dir)

	type network struct {
		Name   string `json:"name"`
		Driver string `json:"driver"`
	}
	s, err := datastore.Open(filepath.Join(dir, "local-kv.db"), datastore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// One API operation, one Update.
	err = s.Update(func(tx *datastore.Tx) error {
		return tx.Put("network", "4f1c", network{Name: "web", Driver: "bridge"})
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	nets, err := datastore.List[network](s, "network")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(nets["4f1c"].Name, nets["4f1c"].Driver)
	// Output: web bridge
}
