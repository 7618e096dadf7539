package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses, the same for every verb: scripts tell a refused or failed command
// from a mistyped one.
const (
	exitOK     = 0 // done (and -h: the usage was asked for)
	exitFailed = 1 // refused (a split that moves users back, a broken file) or failed (no gateway answered)
	exitUsage  = 2 // the command line is wrong: unknown flag, missing or extra arguments, a value that does not parse
)

// verbUsage is each verb's synopsis, positional arguments named, and what it does;
// `shiftgate VERB -h` prints it above the flags.
var verbUsage = map[string]string{
	"serve": `shiftgate serve -config FILE [-log-level LEVEL]

Run the gateway: the traffic listener, the admin API, the config watcher.
SIGHUP reloads the file, SIGTERM drains and exits.`,
	"check": `shiftgate check -config FILE [-against ADMIN_URL]

Validate FILE; every problem names file:line and the key path (exit 1).
With -against, print what loading FILE on that running gateway would move.`,
	"route": `shiftgate route -config FILE [-json] [-H 'Name: v']... [-ip ADDR] METHOD PATH

Explain how the gateway of FILE decides a request METHOD PATH (with the
overrides in FILE's state_dir): route, key source, key, bucket, threshold,
region, reason. Reads only; creates nothing.`,
	"bucket": `shiftgate bucket -salt S KEY...

Print the bucket (0..9999) of each KEY under salt S.`,
	"split": `shiftgate split [-writes P] [-dry-run] [-force] [-local] ROUTE PERCENT [ROUTE PERCENT]...
       shiftgate split -clear ROUTE...

Set the share of users (PERCENT, 0..100, up to two decimals) each ROUTE
sends to its to region, as a runtime override of the file's split. Without
-writes the write split stays where it is (capped at PERCENT). A change that
moves users back is refused (exit 1) unless -force; rollback is the tool for
going back. -clear drops the overrides: the file's split applies again.`,
	"rollback": `shiftgate rollback [-ramp DURATION] [-local] on|off

on: every route sends everything to its from region, at once.
off: the splits apply again; with -ramp, they climb back over DURATION.`,
	"status": `shiftgate status [-json] [-fleet]

Print the gateway's version, config, overrides and rollback, and per route
the file's split, the override, which of them is in force (SOURCE), what is
in effect now and the breakers. -fleet lists the fleet's instances.`,
	"warm": `shiftgate warm -config FILE [-H 'Name: v']... URLS.txt

Send a GET for each path or URL in URLS.txt (one a line, # comments) through
the running gateway of FILE, so routes with a fallback cache hold those
answers. Paths of routes without a cache are reported, not counted (exit 1).`,
	"version": `shiftgate version [-json]

Print the version, the commit it was built from and the Go release.`,
}

// newFlags returns the flag set of a verb, whose -h prints the verb's usage.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("shiftgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		text := verbUsage[name]
		if text == "" {
			text = "shiftgate " + name + " [flags]"
		}
		fmt.Fprintf(stderr, "usage: %s\n", text)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(stderr, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseExit is the exit status of a verb whose flags did not parse: 0 after -h (the
// usage was asked for and printed), 2 for a mistake.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// parseFlags parses a verb's arguments and checks that between min and max positional
// arguments follow (max < 0: no upper bound). When the command must stop, ok is false
// and code is its exit status: 0 after -h, 2 for a usage mistake (the flag package or
// this function has printed what is wrong and the usage).
func parseFlags(fs *flag.FlagSet, args []string, min, max int) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		return parseExit(err), false
	}
	n := fs.NArg()
	if n < min || (max >= 0 && n > max) {
		switch {
		case n < min:
			fmt.Fprintf(fs.Output(), "%s: missing arguments\n", fs.Name())
		case max == 0:
			fmt.Fprintf(fs.Output(), "%s: takes no arguments, got %s (flags go before arguments)\n", fs.Name(), strings.Join(fs.Args(), " "))
		default:
			fmt.Fprintf(fs.Output(), "%s: too many arguments: %s (flags go before arguments)\n", fs.Name(), strings.Join(fs.Args(), " "))
		}
		fs.Usage()
		return exitUsage, false
	}
	return exitOK, true
}

// usageError marks an error in what the command line said (exit 2), as opposed to a
// refusal or a failure (exit 1).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitCode is the exit status for err: 2 for a usage error, else 1.
func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitFailed
}
