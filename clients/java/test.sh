#!/bin/sh
# Compiles the Java client at Java 8 source level and runs its tests against
# ../vectors.json. Needs a JDK 8 or newer; no other dependency.
set -eu
cd "$(dirname "$0")"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# -options: newer JDKs warn that release 8 is old; every other warning fails the build.
javac --release 8 -Xlint:all,-options -Werror -d "$out" $(find src test -name '*.java')
java -cp "$out" dev.shiftgate.client.VectorTest ../vectors.json
