package extserver

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the server die with the test binary, even if the tests
// crash before they stop it.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
