package loadtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Feature variants of the shiftgate target: the same generated config with one
// capability switched on (or, for stats, off), so that the bench reads what each costs
// against plain shiftgate in the same run.
const (
	// targetNoStats is shiftgate with the per-cohort statistics off (they are on by
	// default, so plain shiftgate already pays for them).
	targetNoStats = "shiftgate-nostats"
	// targetAccessLog writes the JSON access log to a file in the run's directory.
	targetAccessLog = "shiftgate-accesslog"
	// targetMirror mirrors 5 % of the split route's reads to its to region (the same
	// fixed-body backend here) and diffs the answers.
	targetMirror = "shiftgate-mirror"
)

// shiftgateVariants are the targets that run shiftgate; each but the plain one is
// compared with plain shiftgate too.
var shiftgateVariants = []string{targetShiftgate, targetPipelined, targetLevers, targetNoStats, targetAccessLog, targetMirror}

// allTargets are the names -targets accepts.
var allTargets = append(append([]string{targetDirect, targetNginx, targetHAProxy}, shiftgateVariants...), floorTargets...)

// applyVariant edits the generated shiftgate config at path for the named variant.
func applyVariant(name, path string) error {
	switch name {
	case targetPipelined:
		return pipelineFeed(path)
	case targetLevers:
		return leversOn(path)
	case targetNoStats:
		return prependConfig(path, "stats: { off: true }\n")
	case targetAccessLog:
		return prependConfig(path, "access_log: { path: "+filepath.Join(filepath.Dir(path), "access.log")+" }\n")
	case targetMirror:
		return afterFailover(path, "    mirror: { percent: 5 }\n")
	}
	return nil
}

func prependConfig(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(text), b...), 0o644)
}

// afterFailover adds route keys after the split route's failover line.
func afterFailover(path, text string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	const anchor = "    failover: idempotent\n"
	if !strings.Contains(string(b), anchor) {
		return fmt.Errorf("%s: no %q line to add to", path, strings.TrimSpace(anchor))
	}
	return os.WriteFile(path, []byte(strings.Replace(string(b), anchor, anchor+text, 1)), 0o644)
}
