package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// How a process was asked to end.
const (
	endKill = "sigkill" // a fault
	endTerm = "sigterm" // a member leaving, or the end of the run
)

// proc is one `kinfer run` process of a slot.
type proc struct {
	slot    int
	n       int // the slot's nth process, from 1
	cmd     *exec.Cmd
	pid     int
	started time.Time
	logPath string
	// asked is how the harness asked it to end ("" while it should run).
	asked string
}

// exited is a process's end, sent by its waiter goroutine.
type exited struct {
	p     *proc
	state *os.ProcessState
	err   error
	at    time.Time
}

// startProc starts `kinfer run` for slot, logging to a file in dir; its end
// is sent on exits.
func startProc(bin, cfgPath, dir string, slot, n int, exits chan<- exited) (*proc, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("instance-%d.%02d.log", slot, n))
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C in the harness's terminal reaches the
	// harness only, which then stops its instances itself. Pdeathsig: an
	// instance never outlives a harness that was killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s run: %w", bin, err)
	}
	p := &proc{slot: slot, n: n, cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), logPath: logPath}
	go func() {
		err := cmd.Wait()
		f.Close()
		exits <- exited{p: p, state: cmd.ProcessState, err: err, at: time.Now()}
	}()
	return p, nil
}

func (p *proc) signal(sig syscall.Signal, asked string) {
	p.asked = asked
	_ = p.cmd.Process.Signal(sig)
}

// describe says how a process ended: "exit 0", "exit 1", "signal killed".
func describe(st *os.ProcessState, err error) string {
	if st == nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) || st.Exited() {
		return fmt.Sprintf("exit %d", st.ExitCode())
	}
	return st.String()
}

// expected reports whether an end is what the harness asked for: death by
// SIGKILL after a kill, exit 0 after SIGTERM.
func expected(asked string, st *os.ProcessState) bool {
	if st == nil {
		return false
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	switch asked {
	case endKill:
		return ws.Signaled() && ws.Signal() == syscall.SIGKILL
	case endTerm:
		return st.Exited() && st.ExitCode() == 0
	}
	return false
}

// logTail returns the last lines of a process's log.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return lastLines(string(b), n)
}
