// Command breakout tries, from inside a container, the system calls that
// container escapes are made of, for the runtime's breakout table. Each
// subcommand exits 0 when the attempt succeeded (the container could break
// out) and 1 with the error when it was denied.
//
//	breakout handle        open_by_handle_at on the root directory (CVE-2014-3519, "shocker")
//	breakout unshare-user  a nested user namespace (full capabilities inside it)
//	breakout keyctl        the host's kernel keyring (add_key)
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: breakout handle|unshare-user|keyctl")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "handle":
		err = openByHandle()
	case "unshare-user":
		err = unix.Unshare(unix.CLONE_NEWUSER)
	case "keyctl":
		_, err = unix.AddKey("user", "skiff-breakout", []byte("x"), unix.KEY_SPEC_SESSION_KEYRING)
	default:
		err = fmt.Errorf("unknown attempt %q", os.Args[1])
	}
	if err != nil {
		fmt.Println("denied:", err)
		os.Exit(1)
	}
	fmt.Println("succeeded")
}

// openByHandle gets a handle for / and opens it again by handle, which
// needs CAP_DAC_READ_SEARCH: with it, any inode of the mount's filesystem
// can be opened, also outside the container's root.
func openByHandle() error {
	h, mountID, err := unix.NameToHandleAt(unix.AT_FDCWD, "/", 0)
	if err != nil {
		return fmt.Errorf("name_to_handle_at: %w", err)
	}
	fd, err := unix.OpenByHandleAt(mountID, h, unix.O_RDONLY)
	if err != nil {
		return fmt.Errorf("open_by_handle_at: %w", err)
	}
	unix.Close(fd)
	return nil
}
