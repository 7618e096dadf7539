package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shiftgate/shiftgate/loadtest/freeport"
)

// proc is one child process of the bench: a proxy or the backend. It is stopped by
// its PID, never by name.
type proc struct {
	name   string
	cmd    *exec.Cmd
	logPth string
	exited chan struct{} // closed when the process has exited
	err    error         // its exit error, valid after exited closes
}

// pinned prefixes argv with taskset so the process runs on cpu; cpu < 0 leaves it
// unpinned. taskset execs the program, so the PID stays that of the program itself.
func pinned(cpu int, argv ...string) []string {
	if cpu < 0 {
		return argv
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
}

// startProc starts argv with its output in logPath. The child gets SIGKILL if the
// bench dies without stopping it, so no proxy outlives the bench.
func startProc(name, logPath string, env []string, argv []string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPth: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM, waits up to grace, then SIGKILL; it is idempotent.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail returns the last lines of the process's output, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPth)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls url until it answers 2xx, the process exits, or timeout passes.
func (p *proc) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("bench: %s exited during start-up (%v):\n%s", p.name, p.err, p.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		status, _, err := readyProbe.GetTimeout(nil, url, time.Second)
		if err == nil && status/100 == 2 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("status %d", status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("bench: %s not ready at %s after %v (last: %v):\n%s", p.name, url, timeout, last, p.logTail())
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) { return freeport.Addr() }

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every
// Linux architecture Go supports (the kernel fixes it for the user ABI).
const clockTicks = 100

// cpuTime is a process's CPU time split as the kernel reports it: in user space and
// in the kernel (system calls, and the softirq work the kernel runs on the process's
// behalf, such as delivering a loopback write to its peer). The sum is the
// scheduler's runtime accounting (what top shows; on a VM it can differ from perf's
// task clock, see the README's Speed section); the split is sampled at the scheduler
// tick, so it is a share, not a stopwatch.
type cpuTime struct {
	user, sys time.Duration
}

func (c cpuTime) total() time.Duration { return c.user + c.sys }

func (c cpuTime) sub(d cpuTime) cpuTime { return cpuTime{c.user - d.user, c.sys - d.sys} }

func (c cpuTime) add(d cpuTime) cpuTime { return cpuTime{c.user + d.user, c.sys + d.sys} }

// procCPU returns the CPU time (all threads) that process pid has used.
func procCPU(pid int) (cpuTime, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTime{}, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/PID/stat line.
// The command name (field 2) may hold spaces and parentheses, so fields are counted
// from its closing parenthesis, the last one on the line.
func parseStatCPU(b []byte) (cpuTime, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return cpuTime{}, errors.New("bench: /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return cpuTime{}, errors.New("bench: /proc stat: too few fields")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return cpuTime{}, fmt.Errorf("bench: /proc stat: %w", err)
	}
	return cpuTime{
		user: time.Duration(utime) * time.Second / clockTicks,
		sys:  time.Duration(stime) * time.Second / clockTicks,
	}, nil
}

// procRSS returns the resident set size of process pid in bytes (VmRSS).
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseStatusRSS(b)
}

// parseStatusRSS reads the VmRSS line ("VmRSS:	  1234 kB") of /proc/PID/status.
func parseStatusRSS(b []byte) (int64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bench: /proc status: odd VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc status: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("bench: /proc status: no VmRSS line")
}

// coreTime is a core's time from /proc/stat.
type coreTime struct {
	// busy is time spent running tasks: user, nice and system time (interrupt time
	// is left out because it belongs to no process).
	busy time.Duration
	// steal is time the hypervisor ran something else while this virtual core had
	// work: the bench's processes were not running, and on its return their caches
	// were cold. Zero on bare metal and on kernels that do not count it.
	steal time.Duration
}

// coreTimes returns every core's coreTime, by core number.
func coreTimes() (map[int]coreTime, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCoreTimes(b)
}

func parseCoreTimes(b []byte) (map[int]coreTime, error) {
	cores := map[int]coreTime{}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "cpu")
		if !ok || rest == "" || rest[0] < '0' || rest[0] > '9' {
			continue // the "cpu " total, or not a cpu line
		}
		f := strings.Fields(rest)
		cpu, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("bench: /proc/stat: %q", line)
		}
		// cpuN user nice system idle iowait irq softirq steal ...
		if len(f) < 4 {
			return nil, fmt.Errorf("bench: /proc/stat: short line %q", line)
		}
		var ticks [8]int64
		for i, v := range f[1:min(len(f), 9)] {
			if ticks[i], err = strconv.ParseInt(v, 10, 64); err != nil {
				return nil, fmt.Errorf("bench: /proc/stat: %w", err)
			}
		}
		cores[cpu] = coreTime{
			busy:  time.Duration(ticks[0]+ticks[1]+ticks[2]) * time.Second / clockTicks,
			steal: time.Duration(ticks[7]) * time.Second / clockTicks,
		}
	}
	if len(cores) == 0 {
		return nil, errors.New("bench: /proc/stat: no cpuN line")
	}
	return cores, nil
}

// procTreeCPU is procCPU of pid and of its children: nginx with a master process
// serves from its workers.
func procTreeCPU(pid int) (cpuTime, error) {
	total, err := procCPU(pid)
	if err != nil {
		return cpuTime{}, err
	}
	des, err := os.ReadDir("/proc")
	if err != nil {
		return total, nil
	}
	for _, de := range des {
		child, err := strconv.Atoi(de.Name())
		if err != nil || child == pid {
			continue
		}
		b, err := os.ReadFile("/proc/" + de.Name() + "/stat")
		if err != nil || parentOf(b) != pid {
			continue
		}
		if c, err := parseStatCPU(b); err == nil {
			total = total.add(c)
		}
	}
	return total, nil
}

// parentOf reads the parent pid (field 4) from a /proc/PID/stat line.
func parentOf(stat []byte) int {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return -1
	}
	return ppid
}
