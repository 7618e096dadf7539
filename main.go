// Command shiftgate is a traffic-shifting gateway: it moves a sticky, monotonic share of
// users from one region to another, keeps internal calls in the region the edge chose,
// breaks and falls back when a region fails, and rolls everything back in one command.
//
// Usage: shiftgate VERB [flags] [args]; `shiftgate help` lists the verbs.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/shiftgate/shiftgate/loadtest"
	"github.com/shiftgate/shiftgate/loadtest/demo"
	"github.com/shiftgate/shiftgate/loadtest/drill"
	"github.com/shiftgate/shiftgate/loadtest/replay"
)

const usage = `shiftgate moves users from one region to another, live.

  shiftgate serve  -config FILE          run the gateway
  shiftgate demo                         stand-in regions + gateway on loopback, a guided cutover
  shiftgate check  -config FILE          validate; errors name file:line and the key path; exit 1
  shiftgate route  -config FILE [-json] [-H 'Name: v']... [-ip ADDR] METHOD PATH
                                         explain a decision
  shiftgate bucket -salt S KEY...        print buckets
  shiftgate split  [-writes P] [-dry-run] [-force] [-local] ROUTE PERCENT [ROUTE PERCENT]...
  shiftgate split  -clear ROUTE...       drop a runtime override: the file's split applies again
  shiftgate rollback [-ramp DURATION] [-local] on|off
  shiftgate status [-json] [-fleet]
  shiftgate limit  [-ramp D] site|ROUTE RPS|off   emergency request caps (fleet-wide with etcd)
  shiftgate budget [-ramp D] FROM TO RATE|off     cross-region byte budget, e.g. 800Mbit
  shiftgate cutoff [-local] on|off [ROUTE...]
                                         tell apps (client config) to stop calling and serve their cache
  shiftgate vectors                      the golden vectors every client SDK is tested against (JSON)
  shiftgate plan   start|pause|resume|abort ROUTE
  shiftgate plan   status [-json] [-history]
                                         guarded ramp plans (routes[i].plan): the gateway raises
                                         the split itself while the new region's gates pass
  shiftgate warm   -config FILE URLS.txt pre-warm the fallback cache through a running gateway
  shiftgate version                      version, commit, Go version
  shiftgate loadtest [flags] URL         load generator (shiftgate loadtest -h)
  shiftgate loadtest -drill [flags]      cutover rehearsal: ramp, reload storm, rollback, region kill
  shiftgate loadtest -replay ACCESS_LOG [-target HOST:PORT] [-rate N]
                                         replay a captured access log (GET/HEAD) against a region
  shiftgate diff   [-route R] [-json]    what mirrored answers showed (routes[i].mirror)
  shiftgate backend [flags]              a fixed-body stand-in backend for benches

shiftgate VERB -h names a verb's arguments and flags. Exit status: 0 done, 1 refused
or failed, 2 a mistake in the command line.
Admin verbs (split, rollback, cutoff, status, limit, budget, plan, diff) take -admin URL (default from -config, else
http://127.0.0.1:9090) and a token from -token-file or $SHIFTGATE_TOKEN.
In a fleet (fleet.etcd), a split, rollback or cutoff made on one instance holds on all of them;
-local changes only that instance while etcd is down (written to etcd when it returns);
-etcd ENDPOINTS -prefix P writes to etcd directly when no instance answers;
status -fleet lists the instances and the override revision each serves.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "serve":
		return cmdServe(rest, stderr)
	case "demo":
		return demo.Main(rest, stdout, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "route":
		return cmdRoute(rest, stdout, stderr)
	case "bucket":
		return cmdBucket(rest, stdout, stderr)
	case "split":
		return cmdSplit(rest, stdout, stderr)
	case "rollback":
		return cmdRollback(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "limit":
		return cmdLimit(rest, stdout, stderr)
	case "budget":
		return cmdBudget(rest, stdout, stderr)
	case "cutoff":
		return cmdCutoff(rest, stdout, stderr)
	case "vectors":
		return cmdVectors(rest, stdout, stderr)
	case "warm":
		return cmdWarm(rest, stdout, stderr)
	case "diff":
		return cmdDiff(rest, stdout, stderr)
	case "plan":
		return cmdPlan(rest, stdout, stderr)
	case "loadtest":
		for _, a := range rest {
			if a == "-replay" || a == "--replay" || strings.HasPrefix(a, "-replay=") || strings.HasPrefix(a, "--replay=") {
				return replay.Main(rest, stdout, stderr)
			}
		}
		for i, a := range rest {
			if a == "-drill" || a == "--drill" {
				return drill.Main(append(append([]string(nil), rest[:i]...), rest[i+1:]...), stdout, stderr)
			}
		}
		return loadtest.Main(rest, stdout, stderr)
	case "backend":
		return loadtest.BackendMain(rest, stdout, stderr)
	case "version":
		return cmdVersion(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "shiftgate: unknown verb %q\n\n%s", verb, usage)
	return exitUsage
}

// headerFlags collects repeated -H flags.
type headerFlags []string

func (h *headerFlags) String() string { return strings.Join(*h, ", ") }

func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }
